/*
 * kmalloc.cc - general kmalloc over kmalloc_obj size classes (see kmalloc.h).
 *
 * Locking: the class zones are created once (kmalloc_init) and read without a lock;
 * a large allocation's descriptor is published in the page map before the pointer
 * is returned and removed before its pages go back; per-CPU accounting is written
 * by its own CPU inside a critical section.
 */
#include "allocator/kmalloc/kmalloc.h"

#include <cstdio>
#include <cstring>
#include <mutex>

#include "allocator/kenv/page_source.h"
#include "allocator/kenv/pagemap.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"

using kenv::crit_enter;
using kenv::crit_exit;
using kenv::mycpuid;
using kenv::panic;

namespace {

/* A large allocation: its pages and the type that holds them. */
struct kmlarge {
	kenv::pagemap_owner pm;
	void *base;
	size_t npages;
	malloc_type *type;
	kmlarge *prev, *next;	/* all live ones, for kmalloc_reset() */
};

/* Live large allocations (host lock: no preemption point inside). */
std::mutex g_large_mtx;
kmlarge *g_large = nullptr;

void large_link(kmlarge *d)
{
	std::lock_guard<std::mutex> g(g_large_mtx);
	d->prev = nullptr;
	d->next = g_large;
	if (g_large != nullptr)
		g_large->prev = d;
	g_large = d;
}

void large_unlink(kmlarge *d)
{
	std::lock_guard<std::mutex> g(g_large_mtx);
	if (d->prev != nullptr)
		d->prev->next = d->next;
	else
		g_large = d->next;
	if (d->next != nullptr)
		d->next->prev = d->prev;
}

kmalloc_zone *g_class[KMALLOC_NCLASSES];
char g_class_name[KMALLOC_NCLASSES][24];
std::atomic<bool> g_inited{false};

inline int size_class(size_t size)
{
	if (size <= KMALLOC_MIN_CLASS)
		return 0;
	return 64 - __builtin_clzll(size - 1) - 6;	/* log2 ceil, 64 -> 0 */
}

inline void account(malloc_type *type, int64_t bytes, int64_t n, bool call)
{
	crit_enter();
	malloc_type_pcpu &pc = type->ks_pcpu[mycpuid()];
	pc.memuse += bytes;
	pc.inuse += n;
	if (call)
		pc.calls.inc();
	crit_exit();
}

int64_t memuse_of(const malloc_type *type)
{
	int64_t m = 0;
	for (const malloc_type_pcpu &pc : type->ks_pcpu)
		m += pc.memuse;
	return m;
}

void *fail(malloc_type *type, size_t size, int flags, const char *why)
{
	type->ks_failed.fetch_add(1, std::memory_order_relaxed);
	if (!(flags & M_NULLOK))
		panic("kmalloc: %s: %s (size %zu, flags 0x%x)", type->ks_shortdesc, why, size,
		      flags);
	return nullptr;
}

void *kmalloc_large(size_t size, malloc_type *type, int flags)
{
	size_t npages = (size + kenv::PAGE_SIZE - 1) / kenv::PAGE_SIZE;
	bool canwait = kenv::malloc_flags_canwait(flags) && kenv::curthread()->td_critcount == 0;
	void *mem = kenv::vm_chunk_alloc(npages, kenv::PAGE_SIZE, kenv::malloc_flags_tier(flags),
					 canwait, type->ks_shortdesc);
	if (mem == nullptr)
		return nullptr;
	auto *d = kenv::host_new<kmlarge>(
		kmlarge{{kenv::PM_KMALLOC_LARGE}, mem, npages, type, nullptr, nullptr});
	if (!kenv::pagemap_set(mem, kenv::PAGE_SIZE, &d->pm))
		panic("kmalloc: %s: page %p already owned", type->ks_shortdesc, mem);
	large_link(d);
	if (flags & M_ZERO)
		memset(mem, 0, npages * kenv::PAGE_SIZE);
	return mem;
}

}  // namespace

void kmalloc_type_init(struct malloc_type *type, const char *name, size_t limit)
{
	type->ks_shortdesc = name;
	type->ks_limit = limit;
	type->ks_failed.store(0, std::memory_order_relaxed);
	for (malloc_type_pcpu &pc : type->ks_pcpu) {
		pc.memuse = 0;
		pc.inuse = 0;
		pc.calls = 0;
	}
}

void kmalloc_init(void)
{
	if (g_inited.load(std::memory_order_acquire))
		return;
	for (int c = 0; c < KMALLOC_NCLASSES; c++) {
		size_t sz = size_t{KMALLOC_MIN_CLASS} << c;
		snprintf(g_class_name[c], sizeof(g_class_name[c]), "kmalloc-%zu", sz);
		g_class[c] = kmalloc_create_obj(g_class_name[c], sz, 0);
	}
	g_inited.store(true, std::memory_order_release);
}

void kmalloc_fini(void)
{
	if (!g_inited.load(std::memory_order_acquire))
		return;
	g_inited.store(false, std::memory_order_release);
	for (kmalloc_zone *&z : g_class) {
		kmalloc_destroy_obj(z);
		z = nullptr;
	}
}

size_t kmalloc_good_size(size_t size)
{
	if (size == 0)
		size = 1;
	if (size > KMALLOC_MAX_CLASS)
		return (size + kenv::PAGE_SIZE - 1) & ~(kenv::PAGE_SIZE - 1);
	return size_t{KMALLOC_MIN_CLASS} << size_class(size);
}

struct kmalloc_zone *kmalloc_class_zone(size_t size)
{
	if (size == 0)
		size = 1;
	return size > KMALLOC_MAX_CLASS ? nullptr : g_class[size_class(size)];
}

void *kmalloc(size_t size, struct malloc_type *type, int flags)
{
	if (!g_inited.load(std::memory_order_relaxed))
		panic("kmalloc: %s: called before kmalloc_init", type->ks_shortdesc);
	if (size > KMALLOC_MAX_LARGE)
		return fail(type, size, flags, "size beyond the largest run");
	size_t good = kmalloc_good_size(size);
	if (type->ks_limit != 0 && memuse_of(type) + static_cast<int64_t>(good) >
					   static_cast<int64_t>(type->ks_limit))
		return fail(type, size, flags, "limit exceeded");
	void *p;
	if (good > KMALLOC_MAX_CLASS) {
		if (flags & M_RNOWAIT)
			kenv::curthread()->td_nosleep++;
		p = kmalloc_large(good, type, flags);
		if (flags & M_RNOWAIT)
			kenv::curthread()->td_nosleep--;
	} else {
		p = kmalloc_obj(good, g_class[size_class(good)], flags | M_NULLOK);
	}
	if (p == nullptr)
		return fail(type, size, flags, "out of memory");
	account(type, static_cast<int64_t>(good), 1, true);
	return p;
}

void kfree(void *ptr, struct malloc_type *type)
{
	if (ptr == nullptr)
		return;
	kenv::pagemap_owner *pm = kenv::pagemap_get(ptr);
	if (pm != nullptr && pm->pm_kind == kenv::PM_KMALLOC_LARGE) {
		auto *d = reinterpret_cast<kmlarge *>(pm);
		if (ptr != d->base)
			panic("kfree: %s: interior pointer %p", type->ks_shortdesc, ptr);
		if (d->type != type)
			panic("kfree: %p freed to type %s but belongs to type %s", ptr,
			      type->ks_shortdesc, d->type->ks_shortdesc);
		size_t npages = d->npages;
		kenv::pagemap_clear(ptr, kenv::PAGE_SIZE);
		large_unlink(d);
		kenv::host_delete(d);
		account(type, -static_cast<int64_t>(npages * kenv::PAGE_SIZE), -1, false);
		kenv::vm_chunk_free(ptr, npages);
		return;
	}
	kmalloc_zone *z = kmalloc_obj_owner(ptr);
	if (z == nullptr)
		panic("kfree: %s: %p is not in any slab", type->ks_shortdesc, ptr);
	size_t sz = kmalloc_obj_size(z);
	if (sz > KMALLOC_MAX_CLASS || g_class[size_class(sz)] != z)
		panic("kfree: %s: %p belongs to zone %s, not to kmalloc", type->ks_shortdesc, ptr,
		      kmalloc_obj_stats(z).name);
	kfree_obj(ptr, z);
	account(type, -static_cast<int64_t>(sz), -1, false);
}

int kmalloc_poll(void)
{
	return kmalloc_obj_poll_all();
}

kmalloc_type_stats kmalloc_type_stats_get(const struct malloc_type *type)
{
	kmalloc_type_stats s{};
	for (const malloc_type_pcpu &pc : type->ks_pcpu) {
		s.memuse += pc.memuse;
		s.inuse += pc.inuse;
		s.calls += pc.calls;
	}
	s.failed = type->ks_failed.load(std::memory_order_relaxed);
	return s;
}

void kmalloc_reset(void)
{
	/* Large allocations still live belong to an abandoned run; their pages went
	 * back with the page source's teardown. The class zones are forgotten here and
	 * freed by kmalloc_obj_reset(). */
	std::lock_guard<std::mutex> g(g_large_mtx);
	while (g_large != nullptr) {
		kmlarge *d = g_large;
		g_large = d->next;
		kenv::pagemap_clear(d->base, kenv::PAGE_SIZE);
		kenv::host_delete(d);
	}
	for (kmalloc_zone *&z : g_class)
		z = nullptr;
	g_inited.store(false, std::memory_order_release);
}
