/*
 * page_source.cc - the simulated VM page allocator (see page_source.h).
 *
 * Memory comes from one arena mapped once per process: slab-sized chunks aligned to
 * their size, and single pages carved from chunks. page_source_init() resets it, so
 * every run sees the same addresses in the same order (determinism, and fast
 * fuzzing: no host allocation per slab). Free memory is poisoned for ASan, so a use
 * of a slab or page after it went back to the VM is reported. The budget and tiers
 * are accounted separately from the arena, which is sized well above any budget.
 * One spinlock protects counters and tables; sleeping happens outside it.
 */
#include "allocator/kenv/page_source.h"
#include "allocator/kenv/pagemap.h"

#include <sys/mman.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

// kenv.h before the test below, which reads its SLABFUZZ_HAVE_ASAN (included after
// it, as it once was, no free page was ever poisoned).
#include "allocator/kenv/kenv.h"

#ifdef SLABFUZZ_HAVE_ASAN
#include <sanitizer/asan_interface.h>
// The functions, not the ASAN_*_MEMORY_REGION macros: those are empty in a file built
// without ASan's instrumentation (the fuzzing builds' framework).
#define PS_POISON(p, n) __asan_poison_memory_region((p), (n))
#define PS_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define PS_POISON(p, n) ((void)(p), (void)(n))
#define PS_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace kenv {

namespace {

constexpr size_t ARENA_CHUNK = 128 * 1024;
constexpr size_t CHUNK_PAGES = ARENA_CHUNK / PAGE_SIZE;
constexpr size_t ARENA_CHUNKS = 2048;			/* 256 MiB of address space */
constexpr size_t ARENA_PAGES = ARENA_CHUNKS * CHUNK_PAGES;

/* The arena: chunk-aligned, mapped once, never unmapped. */
struct Arena {
	char *base = nullptr;
	std::vector<uint32_t> free_chunks;	/* returned chunks, LIFO */
	uint32_t next_chunk = 0;		/* chunks from here on were never handed out */
	std::vector<uint32_t> free_pages;	/* page indices carved from chunks */
	std::vector<const char *> owner;	/* per page: owner of the run starting here
						 * (an interned copy: see owner_name()) */
	std::vector<uint32_t> npages;		/* per page: length of the run starting here */
	size_t high_water = 0;			/* pages below this may have table entries */
};

/*
 * Owners' names, copied once and kept for the process: a chunk's owner is named at
 * teardown, when the zone that took it may be destroyed and its descriptor (which holds
 * the name) recycled or poisoned; reading it there printed another zone's name, or
 * ended a leak report as ASan's use-after-poison instead of its own title. Found by
 * content (open addressing, FNV-1a); names are cut at 31 characters.
 */
constexpr size_t OWNER_SLOTS = 1024;
constexpr size_t OWNER_LEN = 32;
char g_owner_names[OWNER_SLOTS][OWNER_LEN];
bool g_owner_used[OWNER_SLOTS];

const char *owner_name(const char *name)
{
	char key[OWNER_LEN];
	snprintf(key, sizeof(key), "%s", name ? name : "?");
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const char *c = key; *c; c++)
		h = (h ^ static_cast<unsigned char>(*c)) * 0x100000001b3ULL;
	for (size_t n = 0; n < OWNER_SLOTS; n++) {
		size_t i = (h + n) & (OWNER_SLOTS - 1);
		if (!g_owner_used[i]) {
			memcpy(g_owner_names[i], key, sizeof(key));
			g_owner_used[i] = true;
			return g_owner_names[i];
		}
		if (strcmp(g_owner_names[i], key) == 0)
			return g_owner_names[i];
	}
	return "(too many owners)";
}

struct PageSource {
	spinlock spin;
	PageSourceConfig cfg;
	std::atomic<size_t> free{0};	/* read without the lock by vm_free_count() */
	size_t withheld = 0;
	uint64_t nonblocking_requests = 0;
	uint32_t fail_next = 0;
	uint64_t rng = 1;
	int waiters = 0;
	/* Advances whenever pages become free: a waiter sleeps only if nothing was freed
	 * since its request failed (no lost wakeup). */
	std::atomic<uint64_t> free_gen{0};
	/* The most free pages a sleeping request needs (floor + size): the pageout
	 * daemon pages out at least this far. Cleared when it is reached. */
	std::atomic<size_t> wanted{0};
	/* vm_wait() calls so far: a pageout daemon that saw this change since it last
	 * looked must look again before it sleeps (no lost wakeup). */
	std::atomic<uint64_t> pageout_requests{0};
	PageSourceStats st;
	Arena arena;
	uint64_t chunks_in_use = 0;
	size_t pages_in_use = 0;
	char pageout_chan;
	char free_chan;
};

PageSource g_ps;

KENV_NO_COVERAGE void arena_reset()
{
	Arena &a = g_ps.arena;
	if (a.base == nullptr) {
		size_t len = ARENA_CHUNKS * ARENA_CHUNK + ARENA_CHUNK;
		void *m = mmap(nullptr, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m == MAP_FAILED) {
			fprintf(stderr, "slabfuzz: page source: cannot map the arena\n");
			abort();
		}
		uintptr_t b = (reinterpret_cast<uintptr_t>(m) + ARENA_CHUNK - 1) & ~(ARENA_CHUNK - 1);
		a.base = reinterpret_cast<char *>(b);
		a.owner.assign(ARENA_PAGES, nullptr);
		a.npages.assign(ARENA_PAGES, 0);
		PS_POISON(a.base, ARENA_CHUNKS * ARENA_CHUNK);
	}
	if (a.high_water) {
		size_t bytes = ((a.high_water + CHUNK_PAGES - 1) / CHUNK_PAGES) * ARENA_CHUNK;
		/* A chunk's entries are cleared when it is freed: only what a failed run left
		 * in use needs it here (the tables' clearing was a memset of up to 12 bytes a
		 * page, every run). */
		if (g_ps.chunks_in_use > 0) {
			for (size_t i = 0; i < a.high_water && i < ARENA_PAGES; i++) {
				a.owner[i] = nullptr;
				a.npages[i] = 0;
			}
			/* And the ownership map: a thread unwound between taking a chunk and
			 * handing it to its zone (threads are switched at any shared access)
			 * left its entries. */
			pagemap_clear(a.base, a.high_water * PAGE_SIZE);
		}
		/* What the last run wrote is gone: every run sees the arena a fresh process
		 * sees (zeroes, poisoned), so that what a program does never depends on what
		 * ran before it (an object handed out unwritten reads the same in the first
		 * run of a process and in the thousandth). */
		PS_UNPOISON(a.base, bytes);
		memset(a.base, 0, bytes);
		PS_POISON(a.base, bytes);
	}
	a.high_water = 0;
	a.free_pages.clear();
	a.free_chunks.clear();
	a.next_chunk = 0;
}

/* Spinlock held. A free chunk index, or -1. */
long arena_chunk()
{
	Arena &a = g_ps.arena;
	if (!a.free_chunks.empty()) {
		uint32_t c = a.free_chunks.back();
		a.free_chunks.pop_back();
		return c;
	}
	if (a.next_chunk >= ARENA_CHUNKS)
		return -1;
	return a.next_chunk++;
}

/* Spinlock held. Returns the first page index of a run of npages, or -1. */
long arena_take(size_t npages, size_t align)
{
	Arena &a = g_ps.arena;
	long page;
	if (npages == 1 && align <= PAGE_SIZE) {
		if (a.free_pages.empty()) {
			long c = arena_chunk();
			if (c < 0)
				return -1;
			for (size_t k = CHUNK_PAGES; k-- > 0;)
				a.free_pages.push_back(static_cast<uint32_t>(c * CHUNK_PAGES + k));
		}
		page = a.free_pages.back();
		a.free_pages.pop_back();
	} else {
		long c = npages > CHUNK_PAGES || align > ARENA_CHUNK ? -1 : arena_chunk();
		if (c < 0)
			return -1;
		page = c * static_cast<long>(CHUNK_PAGES);
	}
	a.npages[page] = static_cast<uint32_t>(npages);
	size_t end = static_cast<size_t>(page) + (npages == 1 ? 1 : CHUNK_PAGES);
	if (end > a.high_water)
		a.high_water = end;
	return page;
}

size_t tier_floor(vm_tier tier)
{
	switch (tier) {
	case VM_TIER_NORMAL:
		return g_ps.cfg.free_reserved;
	case VM_TIER_SYSTEM:
		return g_ps.cfg.interrupt_free_min;
	case VM_TIER_INTERRUPT:
		return 0;
	}
	return 0;
}

/* Called with the spinlock held: decides whether this non-blocking request fails. */
bool inject_failure(vm_tier tier)
{
	if (!(g_ps.cfg.fail_tier_mask & (1u << tier)))
		return false;
	++g_ps.nonblocking_requests;
	if (g_ps.fail_next > 0) {
		--g_ps.fail_next;
		return true;
	}
	if (g_ps.cfg.fail_nth != 0 && g_ps.nonblocking_requests == g_ps.cfg.fail_nth)
		return true;
	if (g_ps.cfg.fail_rate_ppm != 0) {
		uint64_t &s = g_ps.rng;
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		return s % 1000000 < g_ps.cfg.fail_rate_ppm;
	}
	return false;
}

}  // namespace

void page_source_init(const PageSourceConfig &cfg)
{
	arena_reset();
	g_ps.chunks_in_use = 0;
	g_ps.pages_in_use = 0;
	spin_init(&g_ps.spin, "pagesrc");
	g_ps.cfg = cfg;
	g_ps.free = cfg.budget_pages;
	g_ps.withheld = 0;
	g_ps.nonblocking_requests = 0;
	g_ps.fail_next = 0;
	g_ps.rng = cfg.seed ? cfg.seed : 1;
	g_ps.waiters = 0;
	g_ps.free_gen.store(0);
	g_ps.wanted.store(0);
	g_ps.st = PageSourceStats{};
}

void *vm_chunk_alloc(size_t npages, size_t align, vm_tier tier, bool canwait,
		     const char *owner, bool poisoned)
{
	for (;;) {
		if (current_boot_phase() == boot_phase::EARLY) {
			if (canwait)
				panic("vm_page_alloc: %s waits for pages before the VM is up",
				      owner);
			return nullptr;
		}
		preempt_point();
		spin_lock(&g_ps.spin);
		bool injected = !canwait && inject_failure(tier);
		if (!injected && g_ps.free >= npages &&
		    g_ps.free - npages >= tier_floor(tier)) {
			long page = arena_take(npages, align);
			if (page < 0) {
				spin_unlock(&g_ps.spin);
				panic("vm_page_alloc: arena exhausted (%zu pages, align %zu)",
				      npages, align);
			}
			g_ps.free -= npages;
			g_ps.st.allocs++;
			g_ps.arena.owner[page] = owner_name(owner);
			g_ps.chunks_in_use++;
			g_ps.pages_in_use += npages;
			spin_unlock(&g_ps.spin);
			void *p = g_ps.arena.base + static_cast<size_t>(page) * PAGE_SIZE;
			if (!poisoned)
				PS_UNPOISON(p, npages * PAGE_SIZE);
			return p;
		}
		if (injected)
			g_ps.st.injected++;
		g_ps.st.failures++;
		uint64_t gen = g_ps.free_gen.load(std::memory_order_relaxed);
		if (canwait && g_ps.wanted.load(std::memory_order_relaxed) < tier_floor(tier) + npages)
			g_ps.wanted.store(tier_floor(tier) + npages, std::memory_order_relaxed);
		spin_unlock(&g_ps.spin);
		if (!canwait)
			return nullptr;
		vm_wait_since(gen, "vmwait");
	}
}

void vm_chunk_free(void *chunk, size_t npages, bool poisoned)
{
	Arena &a = g_ps.arena;
	auto off = reinterpret_cast<uintptr_t>(chunk) - reinterpret_cast<uintptr_t>(a.base);
	size_t page = off / PAGE_SIZE;
	spin_lock(&g_ps.spin);
	if (reinterpret_cast<char *>(chunk) < a.base || off % PAGE_SIZE != 0 ||
	    page >= ARENA_PAGES || a.owner[page] == nullptr || a.npages[page] != npages) {
		spin_unlock(&g_ps.spin);
		panic("vm_page_free: %p (%zu pages) was not allocated by the page source",
		      chunk, npages);
	}
	a.owner[page] = nullptr;
	a.npages[page] = 0;
	if (npages == 1)
		a.free_pages.push_back(static_cast<uint32_t>(page));
	else
		a.free_chunks.push_back(static_cast<uint32_t>(page / CHUNK_PAGES));
	g_ps.chunks_in_use--;
	g_ps.pages_in_use -= npages;
	if (!poisoned)
		PS_POISON(chunk, npages == 1 ? PAGE_SIZE : ARENA_CHUNK);
	g_ps.free += npages;
	g_ps.free_gen.fetch_add(1, std::memory_order_relaxed);
	if (g_ps.free >= g_ps.wanted.load(std::memory_order_relaxed))
		g_ps.wanted.store(0, std::memory_order_relaxed);
	g_ps.st.frees++;
	bool wake = g_ps.waiters > 0;
	spin_unlock(&g_ps.spin);
	if (wake)
		wakeup(&g_ps.free_chan);
}

void vm_wait(const char *wmesg)
{
	vm_wait_since(g_ps.free_gen.load(std::memory_order_relaxed), wmesg);
}

void vm_wait_since(uint64_t gen, const char *wmesg)
{
	spin_lock(&g_ps.spin);
	g_ps.waiters++;
	g_ps.st.waits++;
	g_ps.pageout_requests.fetch_add(1, std::memory_order_relaxed);
	spin_unlock(&g_ps.spin);
	wakeup(&g_ps.pageout_chan);
	/* Nothing can run between this check and the sleep but for wakeup()s, which do
	 * not switch (deterministic runtime); the threaded one sleeps at most 10 ms. */
	if (g_ps.free_gen.load(std::memory_order_relaxed) == gen)
		tsleep(&g_ps.free_chan, wmesg, 10);
	spin_lock(&g_ps.spin);
	g_ps.waiters--;
	spin_unlock(&g_ps.spin);
}

size_t vm_free_count()
{
	return g_ps.free.load(std::memory_order_relaxed);
}

uint64_t vm_pageout_requests()
{
	return g_ps.pageout_requests.load(std::memory_order_relaxed);
}

const void *vm_pageout_chan()
{
	return &g_ps.pageout_chan;
}

size_t vm_free_target()
{
	size_t w = g_ps.wanted.load(std::memory_order_relaxed);
	return w > g_ps.cfg.free_target ? w : g_ps.cfg.free_target;
}

void page_source_pressure(size_t pages, vm_tier tier)
{
	spin_lock(&g_ps.spin);
	size_t free = g_ps.free.load();
	size_t floor = tier_floor(tier);
	size_t avail = free > floor ? free - floor : 0;
	size_t take = pages < avail ? pages : avail;
	g_ps.free -= take;
	g_ps.withheld += take;
	spin_unlock(&g_ps.spin);
}

void page_source_relief(size_t pages)
{
	spin_lock(&g_ps.spin);
	size_t give = pages < g_ps.withheld ? pages : g_ps.withheld;
	g_ps.withheld -= give;
	g_ps.free += give;
	g_ps.free_gen.fetch_add(1, std::memory_order_relaxed);
	bool wake = give > 0 && g_ps.waiters > 0;
	spin_unlock(&g_ps.spin);
	if (wake)
		wakeup(&g_ps.free_chan);
}

void page_source_fail_next(uint32_t n)
{
	spin_lock(&g_ps.spin);
	g_ps.fail_next += n;
	spin_unlock(&g_ps.spin);
}

bool page_source_teardown_clean(std::string *title, std::string *report)
{
	std::vector<std::string> leaks = page_source_teardown();
	if (leaks.empty())
		return true;
	*title = "slabfuzz: leak: " + std::to_string(leaks.size()) +
		 " chunks never returned to the page source";
	for (const std::string &l : leaks)
		*report += "  leaked " + l + "\n";
	return false;
}

PageSourceStats page_source_stats()
{
	/* From a kernel thread, under the lock; from a driver between runs, as it is. */
	bool locked = curthread() != nullptr;
	if (locked)
		spin_lock(&g_ps.spin);
	PageSourceStats s = g_ps.st;
	s.budget = g_ps.cfg.budget_pages;
	s.free = g_ps.free;
	s.withheld = g_ps.withheld;
	s.in_use = g_ps.pages_in_use;
	s.chunks_in_use = g_ps.chunks_in_use;
	if (locked)
		spin_unlock(&g_ps.spin);
	return s;
}

std::vector<std::string> page_source_teardown()
{
	std::vector<std::string> leaks;
	char line[256];
	Arena &a = g_ps.arena;
	for (size_t i = 0; g_ps.chunks_in_use > 0 && i < a.high_water; i++) {
		if (a.owner[i] == nullptr)
			continue;
		snprintf(line, sizeof(line), "0x%" PRIxPTR " %u pages %s",
			 reinterpret_cast<uintptr_t>(a.base + i * PAGE_SIZE), a.npages[i],
			 a.owner[i]);
		leaks.emplace_back(line);
	}
	arena_reset();
	g_ps.chunks_in_use = 0;
	g_ps.pages_in_use = 0;
	g_ps.free = g_ps.cfg.budget_pages;
	g_ps.withheld = 0;
	return leaks;
}

}  // namespace kenv
