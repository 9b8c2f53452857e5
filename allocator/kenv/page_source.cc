/*
 * page_source.cc - the simulated VM page allocator (see page_source.h).
 *
 * Chunks are real host memory (aligned_alloc), so that ASan sees a use of a slab
 * after it went back to the VM. One spinlock protects the counters and the chunk
 * table; sleeping happens outside it.
 */
#include "allocator/kenv/page_source.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <map>

#include "allocator/kenv/kenv.h"

namespace kenv {

namespace {

struct Chunk {
	size_t npages;
	const char *owner;
};

struct PageSource {
	spinlock spin;
	PageSourceConfig cfg;
	size_t free = 0;
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
	PageSourceStats st;
	std::map<uintptr_t, Chunk> chunks;
	char pageout_chan;
	char free_chan;
};

PageSource g_ps;

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
	for (auto &kv : g_ps.chunks)
		free(reinterpret_cast<void *>(kv.first));
	g_ps.chunks.clear();
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
		     const char *owner)
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
			g_ps.free -= npages;
			g_ps.st.allocs++;
			spin_unlock(&g_ps.spin);
			void *p = aligned_alloc(align < PAGE_SIZE ? PAGE_SIZE : align,
						npages * PAGE_SIZE);
			if (p == nullptr)
				panic("vm_page_alloc: host out of memory");
			spin_lock(&g_ps.spin);
			g_ps.chunks[reinterpret_cast<uintptr_t>(p)] = Chunk{npages, owner};
			spin_unlock(&g_ps.spin);
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

void vm_chunk_free(void *chunk, size_t npages)
{
	spin_lock(&g_ps.spin);
	auto it = g_ps.chunks.find(reinterpret_cast<uintptr_t>(chunk));
	if (it == g_ps.chunks.end() || it->second.npages != npages) {
		spin_unlock(&g_ps.spin);
		panic("vm_page_free: %p (%zu pages) was not allocated by the page source",
		      chunk, npages);
	}
	g_ps.chunks.erase(it);
	g_ps.free += npages;
	g_ps.free_gen.fetch_add(1, std::memory_order_relaxed);
	if (g_ps.free >= g_ps.wanted.load(std::memory_order_relaxed))
		g_ps.wanted.store(0, std::memory_order_relaxed);
	g_ps.st.frees++;
	bool wake = g_ps.waiters > 0;
	spin_unlock(&g_ps.spin);
	free(chunk);
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
	return __atomic_load_n(&g_ps.free, __ATOMIC_RELAXED);
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

void page_source_pressure(size_t pages)
{
	spin_lock(&g_ps.spin);
	size_t take = pages < g_ps.free ? pages : g_ps.free;
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

PageSourceStats page_source_stats()
{
	PageSourceStats s = g_ps.st;
	s.budget = g_ps.cfg.budget_pages;
	s.free = g_ps.free;
	s.withheld = g_ps.withheld;
	s.in_use = 0;
	for (auto &kv : g_ps.chunks)
		s.in_use += kv.second.npages;
	s.chunks_in_use = g_ps.chunks.size();
	return s;
}

std::vector<std::string> page_source_teardown()
{
	std::vector<std::string> leaks;
	char line[256];
	for (auto &kv : g_ps.chunks) {
		snprintf(line, sizeof(line), "0x%" PRIxPTR " %zu pages %s", kv.first,
			 kv.second.npages, kv.second.owner);
		leaks.emplace_back(line);
		free(reinterpret_cast<void *>(kv.first));
	}
	g_ps.chunks.clear();
	g_ps.free = g_ps.cfg.budget_pages;
	g_ps.withheld = 0;
	return leaks;
}

}  // namespace kenv
