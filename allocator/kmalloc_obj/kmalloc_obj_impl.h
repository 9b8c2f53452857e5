/*
 * kmalloc_obj_impl.h - kmalloc_obj's data structures, for its two halves only: the
 * allocator (kmalloc_obj.cc) and the code that reads its state without changing it
 * (kmalloc_obj_check.cc: the invariant checker and the statistics readers). See
 * kmalloc_obj.cc for who may touch what, and under which lock.
 *
 * Two files because the fuzzing builds leave the checker without ASan's
 * instrumentation, as the rest of the framework that runs after every operation: in
 * one file with the instrumented allocator, every helper it called (an inline
 * accessor, a vector's operator[]) stayed an out-of-line call into the instrumented
 * copy.
 */
#ifndef SLABFUZZ_ALLOCATOR_KMALLOC_OBJ_KMALLOC_OBJ_IMPL_H_
#define SLABFUZZ_ALLOCATOR_KMALLOC_OBJ_KMALLOC_OBJ_IMPL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "allocator/kenv/kenv.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"

#define KMSLAB_MAGIC	0x6b6d736cU
#define KMSLAB_BOOT	0x0001
#define KMO_FREE_FILL	0xdb	/* freed objects are filled with this (not in perf) */
#define KMO_MAG		64	/* per-CPU magazine of free objects, per zone, at most */
#define KMO_MAG_BYTES	8192	/* ... and about this much memory: 4 KiB objects get 4 */
#define KMO_MAG_MIN	4

enum kmslab_where {
	KMS_NONE, KMS_ACTIVE, KMS_ALTERNATE, KMS_PARTIAL, KMS_EMPTY, KMS_FULL,
	KMS_RESERVE,	/* the zone's shared reserve slab */
	KMS_SPENT,	/* drained by reserve allocations, waiting for frees */
};

struct kmalloc_slab {
	uint32_t magic;
	uint32_t flags;
	struct kmalloc_slab *next;
	struct kmalloc_zone *zone;
	uintptr_t base;			/* first object */
	size_t objsize;
	size_t ncount;
	size_t rmask;			/* free ring slots - 1 (a power of two >= ncount) */
	uint64_t objinv;		/* ceil(2^32 / objsize): offset / objsize by a multiply */
	int where;			/* kmslab_where */
	std::atomic<int> cpu;		/* owning CPU while active or alternate */
	void *vm_cookie;
	size_t aindex;
	std::atomic<size_t> findex;
	std::atomic<size_t> xindex;
	std::atomic<uint8_t> *state;	/* per object: 1 allocated, 0 free */
	/* The free ring. Relaxed atomics: a slot (k mod ncount) is rewritten by free
	 * k+ncount only after allocation k consumed it, since frees never outnumber
	 * allocations; that counting argument, not a lock, orders them. */
	std::atomic<void *> *fobjs;
};

/* A counter written by one CPU in a critical section, read by anyone. */
using kmo_counter = kenv::wcounter<uint64_t>;

struct alignas(64) kmalloc_pcpu {
	struct kmalloc_slab *active;
	struct kmalloc_slab *alternate;
	kenv::spinlock spin;
	struct kmalloc_slab *partial;
	struct kmalloc_slab *empty;
	/* Statistics. An allocation from the magazine counts nothing: those are
	 * frees - mag_out - mag_n (every object in or out of the magazine went in by a
	 * free and leaves by an allocation or a flush), which keeps the fast path's
	 * allocation to one store-to-load chain fewer. */
	kmo_counter slab_allocs;	/* allocations not served by the magazine */
	kmo_counter frees;
	kmo_counter remote_frees;
	kmo_counter mag_out;		/* objects flushed from the magazine */
	/* The magazine: objects this CPU freed, handed out again first (LIFO), without
	 * touching their slab's ring. Only this CPU, inside a critical section (and
	 * kmalloc_destroy_obj, on a quiescent zone). */
	kenv::wcounter<int> mag_n;
	void *mag[KMO_MAG];
};

struct kmalloc_zone {
	char name[40];
	size_t objsize;
	size_t ncount;
	size_t limit;
	int mag_cap;			/* magazine capacity: KMO_MAG_BYTES of objects */
	kenv::spinlock spin;
	struct kmalloc_slab *full;
	std::atomic<size_t> nfull{0};
	/* (B) once dipped into: reserve allocations of every CPU share one slab, taken
	 * from the full list and consumed under the zone spinlock, so that a spare
	 * slab is never stranded as one CPU's active slab while another CPU's VM path
	 * needs it. Drained reserve slabs wait on rsv_spent for frees: the next reserve
	 * allocation takes one with free objects back before dipping into a spare, and
	 * the poller returns the all-free ones to the full list. */
	struct kmalloc_slab *rsv_slab;
	struct kmalloc_slab *rsv_spent;
	int reserve;
	std::atomic<int> refilling{0};
	std::atomic<int> pollers{0};	/* polls under way; destroy waits for none */
	bool dying;			/* being destroyed: the poller skips it */
	std::atomic<uint64_t> slabs{0}, boot_slabs{0}, slabs_allocated{0}, slabs_freed{0};
	std::atomic<uint64_t> dips{0}, refills_tried{0}, refills_failed{0}, failed_allocs{0};
	struct kmalloc_zone *next_zone;
	struct kmalloc_pcpu pcpu[kenv::MAXCPU];
};

/* ---- the slab registry: open addressing over slab addresses, lock-free lookup, so
 * that a free of a pointer that no slab owns is detected without touching the foreign
 * memory (written by kmalloc_obj.cc under its lock) ------------------------------- */

constexpr size_t KMO_TAB_SIZE = 1u << 16;
inline kmalloc_slab *const KMO_TOMB = reinterpret_cast<kmalloc_slab *>(1);
extern std::atomic<kmalloc_slab *> kmo_slabtab[KMO_TAB_SIZE];

inline size_t kmo_hash(uintptr_t slab)
{
	return static_cast<size_t>(((slab >> 17) * 0x9e3779b97f4a7c15ULL) >> 48) & (KMO_TAB_SIZE - 1);
}

inline bool kmo_registered(const void *slab)
{
	size_t i = kmo_hash(reinterpret_cast<uintptr_t>(slab));
	for (size_t n = 0; n < KMO_TAB_SIZE; n++, i = (i + 1) & (KMO_TAB_SIZE - 1)) {
		kmalloc_slab *cur = kmo_slabtab[i].load(std::memory_order_acquire);
		if (cur == nullptr)
			return false;
		if (cur == slab)
			return true;
	}
	return false;
}

/* ---- slab accessors ------------------------------------------------------------- */

/* Object index of an offset from the first object (offset / objsize). */
inline size_t kmo_index(const kmalloc_slab *slab, uintptr_t off)
{
	return static_cast<size_t>((off * slab->objinv) >> 32);
}

/* Ring entry k (aindex <= k < xindex). */
inline void *kmo_ring_at(const kmalloc_slab *slab, size_t k)
{
	if (k < slab->ncount)
		return reinterpret_cast<void *>(slab->base + k * slab->objsize);
	return slab->fobjs[k & slab->rmask].load(std::memory_order_relaxed);
}

inline size_t kmo_nfree(const kmalloc_slab *slab)
{
	return slab->xindex.load(std::memory_order_acquire) - slab->aindex;
}

inline kmalloc_slab *kmo_slab_of(const void *obj)
{
	return reinterpret_cast<kmalloc_slab *>(reinterpret_cast<uintptr_t>(obj) &
						~KMALLOC_SLAB_MASK);
}

#endif  // SLABFUZZ_ALLOCATOR_KMALLOC_OBJ_KMALLOC_OBJ_IMPL_H_
