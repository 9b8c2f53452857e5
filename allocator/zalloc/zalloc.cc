/*
 * zalloc.cc - the legacy zone allocator (see zalloc.h).
 *
 * Locking: a CPU's free list is touched only by that CPU inside a critical section;
 * the global pool, the chunk list and the growth counters under z->zspin. Growth
 * (zget) takes pages with no lock held, then threads the new items into the pool.
 * Each item's state (free / handed out) lives in its chunk descriptor, found through
 * the page map, so that misuse is caught without trusting the item's memory.
 */
#include "allocator/zalloc/zalloc.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_set>

#include "allocator/kenv/page_source.h"
#include "allocator/kenv/pagemap.h"

#ifdef SLABFUZZ_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#define Z_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define Z_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define Z_POISON(p, n) ((void)(p), (void)(n))
#define Z_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Freed items (past the link word) are filled with a pattern checked on reuse,
 * where ASan does not poison them instead, and not in perf. */
#if !defined(SLABFUZZ_PERF) && !defined(SLABFUZZ_HAVE_ASAN)
#define Z_FILL_CHECK 1
#endif
#define Z_FREE_FILL	0xdf

#define ZONE_INITED	0x0040	/* fields set up (internal) */
#define ZONE_CANGROW	0x0080	/* zinitna()ed: may take pages (internal) */

using kenv::crit_enter;
using kenv::crit_exit;
using kenv::mycpuid;
using kenv::panic;
using kenv::spin_lock;
using kenv::spin_unlock;

enum : uint8_t { ZI_FREE = 1, ZI_ALLOC = 2 };

/* Memory a zone owns: a run of pages it took, or a boot array. */
struct zchunk {
	kenv::pagemap_owner pm;
	vm_zone *zone;
	char *base;
	size_t nitems;
	size_t npages;			/* 0 for a boot array (caller's memory) */
	zchunk *next;
	std::atomic<uint8_t> *state;	/* per item (kenv::host_obj_alloc: see chunk_free) */
};

namespace {

/*
 * Host bookkeeping, under g_zones_mtx: every zone set up and not yet destroyed, and
 * every chunk descriptor alive. A run may end with a thread unwound at any switch
 * point (a provoked misuse's panic ends it where the others are): a zdestroy half-way
 * through its chunks, a growth whose chunk is not yet on its zone, a zinit() not yet
 * through its set-up. zalloc_reset()
 * frees what these hold, whatever the zones' own lists say. A host lock
 * (kenv::host_lock_guard: no switch while it is held); the functions that take it are
 * host bookkeeping, not kernel memory, and not instrumented (KENV_NO_COVERAGE).
 */
std::mutex g_zones_mtx;
vm_zone *g_zones = nullptr;
std::unordered_set<zchunk *> g_chunks;
std::unordered_set<vm_zone *> g_zinited;	/* zinit()'s structs not yet freed */

KENV_NO_COVERAGE vm_zone *zone_struct_new(void)
{
	kenv::uncounted bookkeeping;
	auto *z = kenv::host_new<vm_zone>();
	z->zflags = ZONE_ALLOCATED;
	kenv::host_lock_guard g(g_zones_mtx);
	g_zinited.insert(z);
	return z;
}

KENV_NO_COVERAGE void zone_struct_delete(vm_zone *z)
{
	kenv::uncounted bookkeeping;
	{
		kenv::host_lock_guard g(g_zones_mtx);
		g_zinited.erase(z);
	}
	kenv::host_delete(z);
}

KENV_NO_COVERAGE void zone_link(vm_zone *z)
{
	kenv::uncounted bookkeeping;
	kenv::host_lock_guard g(g_zones_mtx);
	z->znext = g_zones;
	g_zones = z;
}

KENV_NO_COVERAGE void zone_unlink(vm_zone *z)
{
	kenv::uncounted bookkeeping;
	kenv::host_lock_guard g(g_zones_mtx);
	for (vm_zone **pp = &g_zones; *pp != nullptr; pp = &(*pp)->znext)
		if (*pp == z) {
			*pp = z->znext;
			break;
		}
}

KENV_NO_COVERAGE void chunk_register(zchunk *ch)
{
	kenv::uncounted bookkeeping;
	kenv::host_lock_guard g(g_zones_mtx);
	g_chunks.insert(ch);
}

KENV_NO_COVERAGE void chunk_free(zchunk *ch)
{
	kenv::host_obj_free(ch->state, ch->nitems * sizeof(ch->state[0]));
	kenv::host_delete(ch);
}

KENV_NO_COVERAGE void chunk_delete(zchunk *ch)
{
	kenv::uncounted bookkeeping;
	{
		kenv::host_lock_guard g(g_zones_mtx);
		g_chunks.erase(ch);
	}
	chunk_free(ch);
}

inline void *&zlink(void *item) { return *static_cast<void **>(item); }

void zone_setup(vm_zone *z, const char *name, size_t size)
{
	if (size == 0 || size > 64 * 1024)
		panic("zinit: %s: item size %zu out of range", name, size);
	zone_link(z);	/* first: a set-up cut short is still cleared by zalloc_reset() */
	kenv::spin_init(&z->zspin, name);
	z->zname = name;
	z->zsize = (size + ZONE_ROUNDING - 1) & ~static_cast<size_t>(ZONE_ROUNDING - 1);
	z->zitems = nullptr;
	z->zfreecnt = 0;
	z->ztotal = 0;
	z->zbootitems = 0;
	z->zmax = z->zfreemin = 0;
	z->zpagecount = 0;
	z->zchunks = 0;
	z->zpagemax = 0;
	z->zfailures.store(0, std::memory_order_relaxed);
	z->zchunk_list = nullptr;
	for (vm_zpcpu &pc : z->zpcpu) {
		pc.zitems = nullptr;
		pc.zfreecnt = 0;
		pc.znalloc = 0;
		pc.znfree = 0;
	}
	z->zflags |= ZONE_INITED;
}

void zone_check_size(vm_zone *z, const char *fn, size_t size)
{
	size_t rounded = (size + ZONE_ROUNDING - 1) & ~static_cast<size_t>(ZONE_ROUNDING - 1);
	if (rounded != z->zsize)
		panic("%s: %s: item size %zu differs from the zone's %zu", fn, z->zname, size,
		      z->zsize);
}

inline void item_fill_free(vm_zone *z, void *item)
{
	char *p = static_cast<char *>(item) + sizeof(void *);
	size_t n = z->zsize - sizeof(void *);
#ifdef Z_FILL_CHECK
	memset(p, Z_FREE_FILL, n);
#endif
	Z_POISON(p, n);
}

/* A new chunk's items, all free, linked in address order; returns the first. */
void *chunk_thread(vm_zone *z, zchunk *ch, void **tailp)
{
	void *head = nullptr;
	void **link = &head;
	for (size_t i = 0; i < ch->nitems; i++) {
		void *item = ch->base + i * z->zsize;
		Z_UNPOISON(item, z->zsize);
		ch->state[i].store(ZI_FREE, std::memory_order_relaxed);
		item_fill_free(z, item);
		*link = item;
		link = &zlink(item);
		*tailp = item;
	}
	*link = nullptr;
	return head;
}

zchunk *chunk_new(vm_zone *z, void *mem, size_t bytes, size_t npages)
{
	auto *ch = kenv::host_new<zchunk>();
	ch->pm.pm_kind = kenv::PM_ZALLOC;
	ch->zone = z;
	ch->base = static_cast<char *>(mem);
	ch->nitems = bytes / z->zsize;
	ch->npages = npages;
	ch->next = nullptr;
	ch->state = static_cast<std::atomic<uint8_t> *>(
		kenv::host_obj_alloc(ch->nitems * sizeof(std::atomic<uint8_t>)));
	chunk_register(ch);
	if (!kenv::pagemap_set(mem, ch->nitems * z->zsize, &ch->pm)) {
		chunk_delete(ch);
		panic("zalloc: %s: memory %p/%zu overlaps memory another zone owns", z->zname, mem,
		      bytes);
	}
	return ch;
}

/* Adds a chunk's items to the global pool (and the chunk to the zone). */
void zone_add_chunk(vm_zone *z, zchunk *ch, bool boot)
{
	void *tail = nullptr;
	void *head = chunk_thread(z, ch, &tail);
	spin_lock(&z->zspin);
	ch->next = z->zchunk_list;
	z->zchunk_list = ch;
	z->zchunks++;
	if (head != nullptr) {
		zlink(tail) = z->zitems;
		z->zitems = head;
	}
	z->zfreecnt += static_cast<long>(ch->nitems);
	z->ztotal += static_cast<long>(ch->nitems);
	if (boot)
		z->zbootitems += static_cast<long>(ch->nitems);
	spin_unlock(&z->zspin);
}

/*
 * Grow the zone by one chunk. A ZONE_INTERRUPT zone takes one page of its
 * preallocated room from the interrupt tier; others ZONE_CHUNK_PAGES from the tier
 * the flags (or ZONE_USE_RESERVE) allow. Returns false if it could not.
 */
bool zget(vm_zone *z, int flags, bool canwait)
{
	if (!(z->zflags & ZONE_CANGROW))
		return false;
	size_t npages;
	kenv::vm_tier tier;
	spin_lock(&z->zspin);
	if (z->zflags & ZONE_INTERRUPT) {
		if (z->zpagecount >= z->zpagemax) {
			spin_unlock(&z->zspin);
			return false;
		}
		z->zpagecount++;	/* claim the slot before dropping the lock */
		npages = 1;
		tier = kenv::VM_TIER_INTERRUPT;
	} else {
		npages = (z->zsize * 4 + kenv::PAGE_SIZE - 1) / kenv::PAGE_SIZE;
		if (npages < ZONE_CHUNK_PAGES)
			npages = ZONE_CHUNK_PAGES;
		long grown = z->ztotal - z->zbootitems;
		if (z->zmax != 0 && grown >= z->zmax) {
			spin_unlock(&z->zspin);
			return false;
		}
		tier = (z->zflags & ZONE_USE_RESERVE) ? kenv::VM_TIER_SYSTEM
						      : kenv::malloc_flags_tier(flags);
		if (tier < kenv::malloc_flags_tier(flags))
			tier = kenv::malloc_flags_tier(flags);
	}
	spin_unlock(&z->zspin);
	kenv::preempt_point();
	void *mem = kenv::vm_chunk_alloc(npages, kenv::PAGE_SIZE, tier, canwait, z->zname);
	if (mem == nullptr) {
		if (z->zflags & ZONE_INTERRUPT) {
			spin_lock(&z->zspin);
			z->zpagecount--;
			spin_unlock(&z->zspin);
		}
		return false;
	}
	zone_add_chunk(z, chunk_new(z, mem, npages * kenv::PAGE_SIZE, npages), false);
	return true;
}

zchunk *chunk_of(vm_zone *z, const void *item, const char *fn)
{
	kenv::pagemap_owner *pm = kenv::pagemap_get(item);
	auto *ch = reinterpret_cast<zchunk *>(pm);
	const char *p = static_cast<const char *>(item);
	if (pm == nullptr || pm->pm_kind != kenv::PM_ZALLOC || p < ch->base ||
	    p >= ch->base + ch->nitems * ch->zone->zsize)
		panic("%s: %s: %p is not in any slab of a zone", fn, z->zname, item);
	return ch;
}

/* Hand out an item taken from a free list. */
void *item_prepare(vm_zone *z, void *item, int flags)
{
	zchunk *ch = chunk_of(z, item, "zalloc");
	size_t idx = static_cast<size_t>(static_cast<char *>(item) - ch->base) / z->zsize;
	if (ch->zone != z || ch->state[idx].exchange(ZI_ALLOC, std::memory_order_relaxed) != ZI_FREE)
		panic("zalloc: %s: free list holds %p, which is not a free item of the zone",
		      z->zname, item);
	Z_UNPOISON(item, z->zsize);
#ifdef Z_FILL_CHECK
	const unsigned char *p = static_cast<const unsigned char *>(item);
	for (size_t i = sizeof(void *); i < z->zsize; i++)
		if (p[i] != Z_FREE_FILL)
			kenv::check_failed("use-after-free",
					   "zone %s: free object %p was written at offset %zu",
					   z->zname, item, i);
#endif
	if (flags & M_ZERO)
		memset(item, 0, z->zsize);
	return item;
}

/* Take a batch from the global pool, keeping back `keep` items; the first is
 * returned, the rest go to the current CPU's list. NULL if there are not enough. */
void *pool_take(vm_zone *z, long keep)
{
	spin_lock(&z->zspin);
	long avail = z->zfreecnt - keep;
	if (avail <= 0) {
		spin_unlock(&z->zspin);
		return nullptr;
	}
	long n = avail < ZONE_BURST ? avail : ZONE_BURST;
	void *head = z->zitems;
	void *tail = head;
	for (long i = 1; i < n; i++)
		tail = zlink(tail);
	z->zitems = zlink(tail);
	z->zfreecnt -= n;
	spin_unlock(&z->zspin);
	kenv::preempt_point();
	crit_enter();
	vm_zpcpu *pc = &z->zpcpu[mycpuid()];
	if (n > 1) {
		zlink(tail) = pc->zitems;
		pc->zitems = zlink(head);
		pc->zfreecnt += n - 1;
	}
	pc->znalloc.inc();
	crit_exit();
	return head;
}

void *zalloc_slow(vm_zone *z, int flags)
{
	bool canwait = kenv::malloc_flags_canwait(flags);
	for (;;) {
		void *item = pool_take(z, z->zfreemin);
		if (item != nullptr)
			return item;
		/* Grow without waiting first; failing that, use the items kept back. */
		if (zget(z, flags, false))
			continue;
		if ((item = pool_take(z, 0)) != nullptr)
			return item;
		/* Nothing at all: wait for a page if allowed and the zone can still grow.
		 * A ZONE_INTERRUPT zone waits only for a caller that cannot take NULL. */
		if (!canwait || ((z->zflags & ZONE_INTERRUPT) && (flags & M_NULLOK)) ||
		    !zget(z, flags, true))
			return nullptr;
	}
}

}  // namespace

vm_zone_t zinit(const char *name, size_t size, long nentries, int flags)
{
	vm_zone *z = zone_struct_new();
	zinitna(z, name, size, nentries, flags);
	return z;
}

int zinitna(vm_zone_t z, const char *name, size_t size, long nentries, int flags)
{
	if (!(z->zflags & ZONE_INITED))
		zone_setup(z, name, size);
	else
		zone_check_size(z, "zinitna", size);
	spin_lock(&z->zspin);
	z->zflags |= (flags & (ZONE_INTERRUPT | ZONE_PANICFAIL | ZONE_USE_RESERVE)) | ZONE_CANGROW;
	if (z->zflags & ZONE_INTERRUPT) {
		if (nentries <= 0) {
			spin_unlock(&z->zspin);
			panic("zinitna: %s: ZONE_INTERRUPT needs nentries", z->zname);
		}
		z->zpagemax = (static_cast<size_t>(nentries) * z->zsize + kenv::PAGE_SIZE - 1) /
			      kenv::PAGE_SIZE;
	}
	z->zmax = nentries > 0 ? nentries : 0;
	long perpage = static_cast<long>(kenv::PAGE_SIZE / z->zsize);
	z->zfreemin = perpage > 0 ? perpage : 1;
	spin_unlock(&z->zspin);
	return 1;
}

void zbootinit(vm_zone_t z, const char *name, size_t size, void *item, long nitems)
{
	if (!(z->zflags & ZONE_INITED))
		zone_setup(z, name, size);
	else
		zone_check_size(z, "zbootinit", size);
	z->zflags |= ZONE_BOOT;
	if (nitems <= 0)
		return;
	if (reinterpret_cast<uintptr_t>(item) % ZONE_ROUNDING != 0)
		panic("zbootinit: %s: array %p is not %d-byte aligned", z->zname, item,
		      ZONE_ROUNDING);
	zone_add_chunk(z, chunk_new(z, item, static_cast<size_t>(nitems) * z->zsize, 0), true);
}

void *zalloc_flags(vm_zone_t z, int flags)
{
	kenv::thread *td = kenv::curthread();
	if (flags & M_RNOWAIT)
		td->td_nosleep++;
	crit_enter();
	vm_zpcpu *pc = &z->zpcpu[mycpuid()];
	void *item = pc->zitems;
	if (item != nullptr) {
		pc->zitems = zlink(item);
		pc->zfreecnt--;
		pc->znalloc.inc();
		crit_exit();
	} else {
		crit_exit();
		kenv::preempt_point();
		item = zalloc_slow(z, flags);
	}
	if (flags & M_RNOWAIT)
		td->td_nosleep--;
	if (item == nullptr) {
		z->zfailures.fetch_add(1, std::memory_order_relaxed);
		if ((z->zflags & ZONE_PANICFAIL) || !(flags & M_NULLOK))
			panic("zalloc: %s: zone exhausted (%ld items, flags 0x%x)", z->zname,
			      z->ztotal.get(), flags);
		return nullptr;
	}
	return item_prepare(z, item, flags);
}

void *zalloc(vm_zone_t z)
{
	/* Upstream: an ordinary zone's kmem_alloc() may sleep; the answer may be NULL. */
	return zalloc_flags(z, (z->zflags & ZONE_INTERRUPT) ? (M_RNOWAIT | M_NULLOK)
							   : (M_WAITOK | M_NULLOK));
}

void zfree(vm_zone_t z, void *item)
{
	if (item == nullptr)
		panic("zfree: %s: NULL", z->zname);
	zchunk *ch = chunk_of(z, item, "zfree");
	if (ch->zone != z)
		panic("zfree: %p freed to zone %s but belongs to zone %s", item, z->zname,
		      ch->zone->zname);
	size_t off = static_cast<size_t>(static_cast<char *>(item) - ch->base);
	if (off % z->zsize != 0)
		panic("zfree: %s: interior pointer %p", z->zname, item);
	if (ch->state[off / z->zsize].exchange(ZI_FREE, std::memory_order_relaxed) != ZI_ALLOC)
		panic("zfree: %s: double free of %p", z->zname, item);
	item_fill_free(z, item);
	kenv::preempt_point();
	crit_enter();
	vm_zpcpu *pc = &z->zpcpu[mycpuid()];
	zlink(item) = pc->zitems;
	pc->zitems = item;
	pc->zfreecnt++;
	pc->znfree.inc();
	if (pc->zfreecnt >= 2 * ZONE_BURST) {
		/* Too many on this CPU: a batch goes back to the global pool. */
		void *head = pc->zitems;
		void *tail = head;
		for (int i = 1; i < ZONE_BURST; i++)
			tail = zlink(tail);
		pc->zitems = zlink(tail);
		pc->zfreecnt -= ZONE_BURST;
		spin_lock(&z->zspin);
		zlink(tail) = z->zitems;
		z->zitems = head;
		z->zfreecnt += ZONE_BURST;
		spin_unlock(&z->zspin);
	}
	crit_exit();
}

void zalloc_drain_cpu(vm_zone_t z)
{
	crit_enter();
	vm_zpcpu *pc = &z->zpcpu[mycpuid()];
	void *head = pc->zitems;
	long n = pc->zfreecnt;
	pc->zitems = nullptr;
	pc->zfreecnt = 0;
	if (head != nullptr) {
		void *tail = head;
		while (zlink(tail) != nullptr)
			tail = zlink(tail);
		spin_lock(&z->zspin);
		zlink(tail) = z->zitems;
		z->zitems = head;
		z->zfreecnt += n;
		spin_unlock(&z->zspin);
	}
	crit_exit();
}

namespace {

/* Free the zone's chunks, their pages back to the VM. */
void zone_free_chunks(vm_zone *z)
{
	zchunk *ch = z->zchunk_list;
	z->zchunk_list = nullptr;
	while (ch != nullptr) {
		zchunk *next = ch->next;
		kenv::pagemap_clear(ch->base, ch->nitems * z->zsize);
		Z_UNPOISON(ch->base, ch->npages != 0 ? ch->npages * kenv::PAGE_SIZE
						      : ch->nitems * z->zsize);
		if (ch->npages != 0)
			kenv::vm_chunk_free(ch->base, ch->npages);
		chunk_delete(ch);
		ch = next;
	}
}

}  // namespace

void zdestroy(vm_zone_t z)
{
	zalloc_stats s = zalloc_stats_get(z);
	if (s.used != 0)
		panic("zdestroy: zone %s has %ld live items", z->zname, s.used);
	zone_free_chunks(z);
	zone_unlink(z);
	if (z->zflags & ZONE_ALLOCATED)
		zone_struct_delete(z);
	else
		z->zflags = 0;
}

KENV_CHECKER zalloc_stats zalloc_stats_get(vm_zone_t z)
{
	zalloc_stats s{};
	s.name = z->zname;
	s.size = z->zsize;
	long pcfree = 0;
	for (int i = 0; i < kenv::MAXCPU; i++) {
		const vm_zpcpu &pc = z->zpcpu[i];
		s.requests += pc.znalloc;
		s.frees += pc.znfree;
		pcfree += pc.zfreecnt;
	}
	s.limit = z->zmax;
	s.total = z->ztotal;
	s.free = z->zfreecnt + pcfree;
	s.used = static_cast<long>(s.requests - s.frees);
	s.failures = z->zfailures.load(std::memory_order_relaxed);
	s.pages = z->zpagecount;
	s.pagemax = z->zpagemax;
	s.chunks = z->zchunks;
	s.boot_items = z->zbootitems;
	return s;
}

namespace {

/* Walks a free list: every item must be a free item of z, and the list as long as
 * its count. */
KENV_CHECKER void check_list(vm_zone *z, void *head, long count, const char *what, bool deep,
		std::vector<std::string> *out)
{
	char buf[256];
	long n = 0;
	for (void *item = head; item != nullptr && n <= count; item = zlink(item), n++) {
		if (!deep)
			continue;
		kenv::pagemap_owner *pm = kenv::pagemap_get(item);
		auto *ch = reinterpret_cast<zchunk *>(pm);
		const char *p = static_cast<const char *>(item);
		if (pm == nullptr || pm->pm_kind != kenv::PM_ZALLOC || ch->zone != z ||
		    p < ch->base || p >= ch->base + ch->nitems * z->zsize ||
		    (p - ch->base) % z->zsize != 0) {
			snprintf(buf, sizeof(buf), "zone %s: %s list holds %p, not an item of the zone",
				 z->zname, what, item);
			out->push_back(buf);
			return;
		}
		size_t idx = static_cast<size_t>(p - ch->base) / z->zsize;
		if (ch->state[idx].load(std::memory_order_relaxed) != ZI_FREE) {
			snprintf(buf, sizeof(buf), "zone %s: %s list holds %p, which is in use",
				 z->zname, what, item);
			out->push_back(buf);
		}
	}
	if (n != count) {
		snprintf(buf, sizeof(buf), "zone %s: %s list has %s%ld items, its count says %ld",
			 z->zname, what, n > count ? "more than " : "", n, count);
		out->push_back(buf);
	}
}

}  // namespace

KENV_CHECKER std::vector<std::string> zcheck(vm_zone_t z, bool deep)
{
	std::vector<std::string> out;
	char buf[256];
	zalloc_stats s = zalloc_stats_get(z);
	if (s.free + s.used != s.total) {
		snprintf(buf, sizeof(buf), "zone %s: %ld free + %ld in use != %ld items", z->zname,
			 s.free, s.used, s.total);
		out.push_back(buf);
	}
	if (s.pagemax != 0 && s.pages > s.pagemax) {
		snprintf(buf, sizeof(buf), "zone %s: %zu pages beyond the %zu reserved", z->zname,
			 s.pages, s.pagemax);
		out.push_back(buf);
	}
	check_list(z, z->zitems, z->zfreecnt, "global", deep, &out);
	for (int i = 0; i < kenv::MAXCPU; i++) {
		char what[32];
		snprintf(what, sizeof(what), "cpu%d", i);
		check_list(z, z->zpcpu[i].zitems, z->zpcpu[i].zfreecnt, what, deep, &out);
	}
	if (deep) {
		long marked = 0, items = 0;
		for (zchunk *ch = z->zchunk_list; ch != nullptr; ch = ch->next) {
			items += static_cast<long>(ch->nitems);
			for (size_t i = 0; i < ch->nitems; i++)
				marked += ch->state[i].load(std::memory_order_relaxed) == ZI_FREE;
		}
		if (marked != s.free || items != s.total) {
			snprintf(buf, sizeof(buf),
				 "zone %s: %ld items marked free of %ld in chunks; lists hold %ld of %ld",
				 z->zname, marked, items, s.free, s.total);
			out.push_back(buf);
		}
	}
	return out;
}

vm_zone_t zalloc_owner(const void *ptr)
{
	kenv::pagemap_owner *pm = kenv::pagemap_get(ptr);
	if (pm == nullptr || pm->pm_kind != kenv::PM_ZALLOC)
		return nullptr;
	auto *ch = reinterpret_cast<zchunk *>(pm);
	const char *p = static_cast<const char *>(ptr);
	if (p < ch->base || p >= ch->base + ch->nitems * ch->zone->zsize)
		return nullptr;
	return ch->zone;
}

/* Between runs, no kernel thread alive: every chunk descriptor (on a zone's list or
 * not: see g_chunks) is forgotten, its pages left to the page source's teardown; every
 * zone not destroyed is freed (zinit's) or cleared for a new zinitna/zbootinit. */
KENV_NO_COVERAGE void zalloc_reset(void)
{
	kenv::host_lock_guard g(g_zones_mtx);
	for (zchunk *ch : g_chunks) {
		kenv::pagemap_clear(ch->base, ch->nitems * ch->zone->zsize);
		Z_UNPOISON(ch->base, ch->npages != 0 ? ch->npages * kenv::PAGE_SIZE
						      : ch->nitems * ch->zone->zsize);
		chunk_free(ch);
	}
	g_chunks.clear();
	for (vm_zone *z = g_zones; z != nullptr; z = z->znext)
		if (!(z->zflags & ZONE_ALLOCATED))
			z->zflags = 0;
	g_zones = nullptr;
	for (vm_zone *z : g_zinited)
		kenv::host_delete(z);
	g_zinited.clear();
}
