/*
 * kmalloc_obj.cc - the per-CPU slab allocator (see kmalloc_obj.h for the contract).
 *
 * Data structures and who may touch them
 * --------------------------------------
 * A slab is a 128 KiB chunk aligned to its size; its header sits at the start, so a
 * free finds the slab by masking the address. The header holds a ring of free-object
 * pointers, fobjs[] (a power of two >= ncount of slots), indexed by three monotonic
 * indices taken modulo its size:
 *
 *     aindex <= xindex <= findex,   xindex - aindex = objects free for allocation
 *
 *   - aindex: the next object to hand out; advanced only by the CPU whose active or
 *     alternate slab it is, inside a critical section;
 *   - findex: the next ring slot a free writes; any CPU reserves a slot with an atomic
 *     fetch-add, without a lock (remote frees);
 *   - xindex: frees published so far; each free, after writing its slot, waits for
 *     xindex to reach its slot and advances it by one, so slots become visible in
 *     order.
 * A state byte per object (1 = allocated) catches double frees; the free path
 * exchanges it atomically.
 *
 * Per zone and per CPU: a magazine of up to mag_cap free objects (the fast path: a
 * free pushes, an allocation pops, no atomic operation), an active and an alternate
 * slab (touched only by that CPU in a critical section), and two lists under the per-CPU spinlock: partial (slabs with
 * free objects) and empty (slabs that had none when they were retired; remote frees
 * may have refilled them). Per zone: the full list (all objects free), under the zone
 * spinlock, which is also the spare-slab reserve of (B). The poller moves all-free
 * slabs from the per-CPU lists to the full list and gives the surplus beyond the
 * reserve back to the page source, never a boot slab.
 *
 * Lock order: zone spinlock and per-CPU spinlocks are never held together; no
 * spinlock is held across a page allocation, a VM hook, or a nested allocation.
 */
#include "allocator/kmalloc_obj/kmalloc_obj.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <new>
#include <type_traits>
#include <cstddef>

#include "allocator/kenv/kenv.h"
#include "allocator/kmalloc_obj/kmalloc_obj_impl.h"

#ifdef SLABFUZZ_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#define KMO_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define KMO_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define KMO_POISON(p, n) ((void)(p), (void)(n))
#define KMO_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

using kenv::crit_enter;
using kenv::crit_exit;
using kenv::curthread;
using kenv::mycpuid;
using kenv::panic;
using kenv::preempt_point;
using kenv::spin_lock;
using kenv::spin_unlock;

/* The slab registry (kmalloc_obj_impl.h): written under kmo_tab_spin. */
std::atomic<kmalloc_slab *> kmo_slabtab[KMO_TAB_SIZE];

namespace {

const kmalloc_vm_hooks *kmo_hooks = nullptr;

/* ---- zone registry (for the poller) and slab registry (for frees) -------------- */

kenv::spinlock kmo_zones_spin;
struct kmalloc_zone *kmo_zones = nullptr;

/* Zone descriptors come from a table of their own, as a kernel's would: a static array,
 * handed out in order, a destroyed zone's descriptor serving the next
 * kmalloc_create_obj() (so creating and destroying zones, which fuzzers do thousands of
 * times a second, costs no host allocation). A recycled descriptor is poisoned for ASan
 * but for its link, so that a use after kmalloc_destroy_obj() is caught. A new kernel
 * (kmalloc_obj_reset) starts the table afresh: the same program gets the same
 * descriptors whatever ran before it in the process (descriptors from the host heap
 * were host-heap memory another object of the same run may have used, and that
 * decided which accesses counted as shared). Both under kmo_zones_spin (or before any
 * kernel thread exists). */
static_assert(std::is_trivially_destructible_v<kmalloc_zone>);
constexpr size_t KMO_MAX_ZONES = 256;
/* Raw storage (zero pages until used): each descriptor is constructed when handed out. */
alignas(kmalloc_zone) unsigned char kmo_zone_mem[KMO_MAX_ZONES * sizeof(kmalloc_zone)];
kmalloc_zone *const kmo_zone_pool = reinterpret_cast<kmalloc_zone *>(kmo_zone_mem);
size_t kmo_pool_next = 0;	/* descriptors from here on were not handed out since reset */
size_t kmo_pool_high = 0;	/* ... nor ever, from here on */
struct kmalloc_zone *kmo_zones_free = nullptr;

void kmo_zone_recycle(kmalloc_zone *zone)
{
	zone->next_zone = kmo_zones_free;
	kmo_zones_free = zone;
	KMO_POISON(zone, offsetof(kmalloc_zone, next_zone));
	KMO_POISON(&zone->next_zone + 1,
		   sizeof(kmalloc_zone) - offsetof(kmalloc_zone, next_zone) - sizeof(zone->next_zone));
}

kmalloc_zone *kmo_zone_new()
{
	bool kthread = kenv::curthread() != nullptr;
	if (kthread)
		spin_lock(&kmo_zones_spin);
	kmalloc_zone *zone = kmo_zones_free;
	if (zone != nullptr) {
		kmo_zones_free = zone->next_zone;
	} else if (kmo_pool_next < KMO_MAX_ZONES) {
		zone = &kmo_zone_pool[kmo_pool_next++];
		kmo_pool_high = std::max(kmo_pool_high, kmo_pool_next);
	}
	if (kthread)
		spin_unlock(&kmo_zones_spin);
	if (zone == nullptr)
		panic("kmalloc_create_obj: the zone table is full (%zu zones)", KMO_MAX_ZONES);
	KMO_UNPOISON(zone, sizeof(*zone));
	return new (zone) kmalloc_zone();
}

kenv::spinlock kmo_tab_spin;
std::atomic<size_t> kmo_tab_live{0};
std::vector<size_t> kmo_tab_touched;	/* slots ever written, for kmalloc_obj_reset() */

/* The simulation's own bookkeeping (what kmalloc_obj_reset() walks), not kernel state:
 * kept out of the interleavings at shared accesses (kenv::uncounted). The vector grows
 * only in a process's first runs: its accesses made a program's interleaving depend on
 * which programs ran before it in the process (found as a slab-consistency crash that
 * reproduced only as the first run of a process). */
KENV_NO_COVERAGE void kmo_tab_touched_add(size_t i)
{
	kenv::uncounted bookkeeping;
	kmo_tab_touched.push_back(i);
}

void kmo_register(kmalloc_slab *slab)
{
	spin_lock(&kmo_tab_spin);
	size_t i = kmo_hash(reinterpret_cast<uintptr_t>(slab));
	for (size_t n = 0; n < KMO_TAB_SIZE; n++, i = (i + 1) & (KMO_TAB_SIZE - 1)) {
		kmalloc_slab *cur = kmo_slabtab[i].load(std::memory_order_relaxed);
		if (cur == nullptr || cur == KMO_TOMB) {
			if (cur == nullptr)
				kmo_tab_touched_add(i);
			kmo_slabtab[i].store(slab, std::memory_order_release);
			kmo_tab_live.fetch_add(1, std::memory_order_relaxed);
			spin_unlock(&kmo_tab_spin);
			return;
		}
	}
	spin_unlock(&kmo_tab_spin);
	panic("kmalloc_obj: slab registry full");
}

void kmo_unregister(kmalloc_slab *slab)
{
	spin_lock(&kmo_tab_spin);
	size_t i = kmo_hash(reinterpret_cast<uintptr_t>(slab));
	for (size_t n = 0; n < KMO_TAB_SIZE; n++, i = (i + 1) & (KMO_TAB_SIZE - 1)) {
		kmalloc_slab *cur = kmo_slabtab[i].load(std::memory_order_relaxed);
		if (cur == nullptr)
			break;
		if (cur == slab) {
			kmo_slabtab[i].store(KMO_TOMB, std::memory_order_release);
			kmo_tab_live.fetch_sub(1, std::memory_order_relaxed);
			break;
		}
	}
	spin_unlock(&kmo_tab_spin);
}

/* ---- slab layout ------------------------------------------------------------------ */

/* Free ring slots for n objects: a power of two, so that a ring index is masked,
 * not divided. */
size_t kmo_ring_slots(size_t n)
{
	size_t r = 1;
	while (r < n)
		r <<= 1;
	return r;
}

size_t kmo_header_size(size_t n)
{
	size_t h = (sizeof(kmalloc_slab) + 7) & ~size_t{7};
	h += kmo_ring_slots(n) * sizeof(void *);		/* fobjs */
	h += n;							/* state bytes */
	return (h + KMALLOC_OBJ_ALIGN - 1) & ~size_t{KMALLOC_OBJ_ALIGN - 1};
}

/* Objects a slab holds: the largest n whose header and objects fit (header and objects
 * both grow with n, so a binary search; zones are created thousands of times a second
 * by a fuzzer, and a 16-byte zone's n is near 8,000). */
size_t kmo_capacity(size_t objsize)
{
	size_t lo = 0, hi = KMALLOC_SLAB_SIZE / objsize;	/* lo fits; hi + 1 does not */
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		if (kmo_header_size(mid) + mid * objsize <= KMALLOC_SLAB_SIZE)
			lo = mid;
		else
			hi = mid - 1;
	}
	size_t n = lo;
#ifdef SLABFUZZ_BUG_SLAB_COUNT_OFF_BY_ONE
	n++;	/* zoo: the last object runs past the end of the slab */
#endif
	return n;
}

/* A free object is poisoned for ASan where ASan runs, and otherwise (but in perf)
 * filled with a pattern that kmo_prepare() checks when it is handed out again. */
#if !defined(SLABFUZZ_PERF) && !defined(SLABFUZZ_HAVE_ASAN)
#define KMO_FILL_CHECK 1
#endif

inline void kmo_fill_free(void *obj, size_t size)
{
#ifdef KMO_FILL_CHECK
	memset(obj, KMO_FREE_FILL, size);
#endif
	KMO_POISON(obj, size);
}

kmalloc_slab *kmo_slab_init(void *chunk, kmalloc_zone *zone, uint32_t flags)
{
	auto *slab = static_cast<kmalloc_slab *>(chunk);
	size_t n = zone->ncount;
	/* A chunk from the page source comes poisoned (see kmem_slab_alloc), boot memory
	 * addressable: the header is made addressable (it never is poisoned while the slab
	 * lives), boot memory's objects poisoned below. */
	KMO_UNPOISON(chunk, kmo_header_size(n));
	slab->magic = KMSLAB_MAGIC;
	slab->flags = flags;
	slab->next = nullptr;
	slab->zone = zone;
	slab->objsize = zone->objsize;
	slab->ncount = n;
	slab->where = KMS_NONE;
	new (&slab->cpu) std::atomic<int>(-1);
	slab->vm_cookie = nullptr;
	char *p = reinterpret_cast<char *>(slab) + ((sizeof(kmalloc_slab) + 7) & ~size_t{7});
	slab->fobjs = reinterpret_cast<std::atomic<void *> *>(p);
	slab->rmask = kmo_ring_slots(n) - 1;
	/* Exact for offsets < 2^17 and sizes <= 2^15 (objects are at most a quarter
	 * of a slab): the error term stays under 1/objsize. */
	slab->objinv = ((uint64_t{1} << 32) + zone->objsize - 1) / zone->objsize;
	p += (slab->rmask + 1) * sizeof(void *);
	slab->state = reinterpret_cast<std::atomic<uint8_t> *>(p);
	slab->base = reinterpret_cast<uintptr_t>(slab) + kmo_header_size(n);
	memset(static_cast<void *>(slab->state), 0, n);	/* atomic<uint8_t> 0: all free */
	/* The ring's first ncount entries are implicit (object k at ring index k < ncount,
	 * see kmo_ring_at): no O(ncount) initialisation per slab. A free writes ring slot
	 * (findex & rmask) only after that slot's implicit entry was handed out, since
	 * frees never outnumber allocations. */
	/* Objects not yet handed out carry no fill pattern: kmo_prepare() checks the
	 * pattern only on objects that went through a free (see kmo_take). */
	if (flags & KMSLAB_BOOT)
		KMO_POISON(reinterpret_cast<void *>(slab->base), n * zone->objsize);
#ifdef SLABFUZZ_BUG_SLAB_COUNT_OFF_BY_ONE
	/* zoo: the slab is initialised as if the last object fitted */
	memset(reinterpret_cast<void *>(slab->base), 0, n * zone->objsize);
#endif
	slab->aindex = 0;
	new (&slab->findex) std::atomic<size_t>(n);
	new (&slab->xindex) std::atomic<size_t>(n);
	kmo_register(slab);
	return slab;
}

/* Owner CPU, inside a critical section, nfree > 0. *reused: the object was freed
 * before (the first ncount hand-outs of a slab are fresh objects). */
inline void *kmo_take(kmalloc_slab *slab, bool *reused)
{
	void *obj = kmo_ring_at(slab, slab->aindex);
	*reused = slab->aindex >= slab->ncount;
	slab->aindex++;
	size_t i = kmo_index(slab, reinterpret_cast<uintptr_t>(obj) - slab->base);
	slab->state[i].store(1, std::memory_order_relaxed);
	return obj;
}

/* Any CPU, inside a critical section. */
inline void kmo_put(kmalloc_slab *slab, void *obj)
{
#ifdef SLABFUZZ_BUG_REMOTE_FREE_NONATOMIC
	/* zoo: reserve the ring slot with a load and a store instead of a fetch-add */
	size_t i = slab->findex.load(std::memory_order_relaxed);
	preempt_point();
	slab->findex.store(i + 1, std::memory_order_relaxed);
#else
	size_t i = slab->findex.fetch_add(1, std::memory_order_relaxed);
#endif
#ifndef SLABFUZZ_BUG_RING_PUBLISH_EARLY
	slab->fobjs[i & slab->rmask].store(obj, std::memory_order_relaxed);
#endif
	for (;;) {
		size_t x = slab->xindex.load(std::memory_order_acquire);
		if (x == i)
			break;
		if (x > i)
			panic("kfree_obj: %s: free ring slot overtaken (slot %zu, published %zu)",
			      slab->zone->name, i, x);
		kenv::cpu_spinwait();
	}
	slab->xindex.store(i + 1, std::memory_order_release);
#ifdef SLABFUZZ_BUG_RING_PUBLISH_EARLY
	/* zoo: the slot is written after it was published (two plain stores in the wrong
	 * order): the owner may hand out what the slot held before */
	slab->fobjs[i & slab->rmask].store(obj, std::memory_order_relaxed);
#endif
}

/* Returns the n oldest objects of pc's magazine to their slabs' rings. */
__attribute__((noinline)) void kmo_mag_flush(kmalloc_pcpu *pc, int n)
{
	int have = pc->mag_n;
	if (n > have)
		n = have;
	for (int i = 0; i < n; i++)
		kmo_put(kmo_slab_of(pc->mag[i]), pc->mag[i]);
	for (int i = n; i < have; i++)
		pc->mag[i - n] = pc->mag[i];
	pc->mag_n = have - n;
	pc->mag_out += n;
}

void kmo_list_push(kmalloc_slab **head, kmalloc_slab *slab, int where)
{
	slab->where = where;
	slab->next = *head;
	*head = slab;
}

bool kmo_list_remove(kmalloc_slab **head, kmalloc_slab *slab)
{
	for (kmalloc_slab **pp = head; *pp; pp = &(*pp)->next) {
		if (*pp == slab) {
			*pp = slab->next;
			slab->next = nullptr;
			slab->where = KMS_NONE;
			return true;
		}
	}
	return false;
}

/* ---- slabs from and to the page source ----------------------------------------------- */

kmalloc_slab *kmem_slab_alloc(kmalloc_zone *zone, int flags)
{
	if (zone->limit && (zone->slabs.load() + 1) * KMALLOC_SLAB_SIZE > zone->limit)
		return nullptr;
	bool canwait = kenv::malloc_flags_canwait(flags);
#ifdef SLABFUZZ_BUG_NOWAIT_BLOCKS
	/* zoo: M_NOWAIT requests wait for pages like M_WAITOK ones */
	if (!(flags & M_USE_INTERRUPT_RESERVE))
		canwait = true;
#endif
	/* Poisoned as it comes (ASan): its objects stay so until handed out, and the
	 * space past the last object for good. */
	void *chunk = kenv::vm_chunk_alloc(KMALLOC_SLAB_PAGES, KMALLOC_SLAB_SIZE,
					   kenv::malloc_flags_tier(flags), canwait, zone->name,
					   /*poisoned=*/true);
	if (chunk == nullptr)
		return nullptr;
	void *cookie = nullptr;
	if (kmo_hooks != nullptr && !kmo_hooks->map(zone, chunk, flags, &cookie)) {
		kenv::vm_chunk_free(chunk, KMALLOC_SLAB_PAGES, /*poisoned=*/true);
		return nullptr;
	}
	kmalloc_slab *slab = kmo_slab_init(chunk, zone, 0);
	slab->vm_cookie = cookie;
	zone->slabs.fetch_add(1);
	zone->slabs_allocated.fetch_add(1);
	return slab;
}

void kmem_slab_free(kmalloc_zone *zone, kmalloc_slab *slab)
{
	kmo_unregister(slab);
	void *cookie = slab->vm_cookie;
	slab->magic = 0;
	zone->slabs.fetch_sub(1);
	zone->slabs_freed.fetch_add(1);
	if (kmo_hooks != nullptr)
		kmo_hooks->unmap(zone, slab, cookie);
	/* Every object is free, and so poisoned, as is the space past the last one: with
	 * the header, the whole chunk goes back poisoned. */
	KMO_POISON(slab, kmo_header_size(slab->ncount));
	kenv::vm_chunk_free(slab, KMALLOC_SLAB_PAGES, /*poisoned=*/true);
}

/* ---- the slow path ------------------------------------------------------------------------ */

/* Per-CPU lists: a slab with free objects, or NULL. Moves refilled "empty" slabs to
 * partial on the way. Inside the caller's critical section. */
kmalloc_slab *kmo_take_percpu(kmalloc_pcpu *pc)
{
	spin_lock(&pc->spin);
	int scanned = 0;
	for (kmalloc_slab **pp = &pc->empty; *pp && scanned < 8; scanned++) {
		kmalloc_slab *s = *pp;
		if (kmo_nfree(s) > 0) {
			*pp = s->next;
			kmo_list_push(&pc->partial, s, KMS_PARTIAL);
		} else {
			pp = &s->next;
		}
	}
	kmalloc_slab *slab = pc->partial;
	if (slab != nullptr) {
		pc->partial = slab->next;
		slab->next = nullptr;
		slab->where = KMS_NONE;
	}
	spin_unlock(&pc->spin);
	return slab;
}

/* The zone's full list, above the reserve of (B) (everything while booting). */
kmalloc_slab *kmo_take_full(kmalloc_zone *zone, bool *dipped)
{
	bool booting = kenv::current_boot_phase() < kenv::boot_phase::VM_READY;
	size_t floor = static_cast<size_t>(zone->reserve);
#ifdef SLABFUZZ_BUG_RESERVE_OFF_BY_ONE
	/* zoo: ordinary allocations may take the last spare slab */
	if (floor > 0)
		floor--;
#endif
#ifdef SLABFUZZ_BUG_FULL_PEEK_UNLOCKED
	/* zoo: the count is checked before the lock is taken, and not again under it
	 * (another CPU may take the slab it counted in between) */
	bool allowed = zone->nfull > 0 && (booting || zone->nfull > floor);
	spin_lock(&zone->spin);
#else
	spin_lock(&zone->spin);
	bool allowed = zone->nfull > 0 && (booting || zone->nfull > floor);
#endif
	kmalloc_slab *slab = nullptr;
	if (allowed) {
		slab = zone->full;
		zone->full = slab->next;
		slab->next = nullptr;
		slab->where = KMS_NONE;
		zone->nfull--;
		if (!booting && zone->nfull < static_cast<size_t>(zone->reserve)) {
			*dipped = true;
			zone->dips.fetch_add(1);
		}
	}
	spin_unlock(&zone->spin);
	return slab;
}

/* A reserve allocation (M_USE_RESERVE, the VM up): from the zone's shared reserve
 * slab, dipping into the spares when it is drained. Any CPU, any critical state. */
void *kmo_alloc_reserve(kmalloc_zone *zone, bool *reused)
{
	void *obj = nullptr;
	spin_lock(&zone->spin);
	kmalloc_slab *rs = zone->rsv_slab;
	if (rs != nullptr && kmo_nfree(rs) == 0) {
		kmo_list_push(&zone->rsv_spent, rs, KMS_SPENT);
		zone->rsv_slab = rs = nullptr;
	}
	/* Objects freed into a drained reserve slab are the reserve's again: use them
	 * before dipping into another spare. */
	if (rs == nullptr) {
		kmalloc_slab **pp = &zone->rsv_spent;
		while (*pp != nullptr && kmo_nfree(*pp) == 0)
			pp = &(*pp)->next;
		if ((rs = *pp) != nullptr) {
			*pp = rs->next;
			rs->next = nullptr;
			rs->where = KMS_RESERVE;
			zone->rsv_slab = rs;
		}
	}
	if (rs == nullptr && zone->full != nullptr) {
		rs = zone->full;
		zone->full = rs->next;
		rs->next = nullptr;
		rs->where = KMS_RESERVE;
		zone->nfull--;
		zone->rsv_slab = rs;
		zone->dips.fetch_add(1);
	}
	if (rs != nullptr)
		obj = kmo_take(rs, reused);
	spin_unlock(&zone->spin);
	return obj;
}

void kmo_push_full(kmalloc_zone *zone, kmalloc_slab *slab)
{
	spin_lock(&zone->spin);
	slab->cpu.store(-1, std::memory_order_relaxed);
	kmo_list_push(&zone->full, slab, KMS_FULL);
	zone->nfull++;
	spin_unlock(&zone->spin);
}

/* Make slab the active one of pc; the exhausted active becomes the alternate, and the
 * exhausted alternate goes to the empty list. Inside a critical section. */
void kmo_install(kmalloc_pcpu *pc, kmalloc_slab *slab, int cpu)
{
	kmalloc_slab *old_alt = pc->alternate;
	pc->alternate = pc->active;
	if (pc->alternate)
		pc->alternate->where = KMS_ALTERNATE;
	pc->active = slab;
	slab->where = KMS_ACTIVE;
	slab->cpu.store(cpu, std::memory_order_relaxed);
	if (old_alt != nullptr) {
		spin_lock(&pc->spin);
		/* Read once: a remote free may publish into old_alt's ring at any moment (it
		 * went on the empty list marked partial when one landed between two reads). */
		bool has_free = kmo_nfree(old_alt) > 0;
		kmo_list_push(has_free ? &pc->partial : &pc->empty, old_alt,
			      has_free ? KMS_PARTIAL : KMS_EMPTY);
		spin_unlock(&pc->spin);
	}
}

/* Entered inside the critical section kmalloc_obj() opened; leaves it. */
void *kmo_alloc_slow(kmalloc_zone *zone, int flags, bool *reused)
{
	kenv::thread *td = curthread();
	if (++td->td_kmdepth > KMALLOC_MAX_DEPTH)
		kenv::check_failed("recursion-depth", "zone %s: allocator slow path nested %d deep",
				   zone->name, td->td_kmdepth);
	bool want_refill = false;
	bool emergency_tried = false;
	void *obj = nullptr;
	for (;;) {
		kmalloc_slab *fresh = nullptr;
		int cpu = mycpuid();
		kmalloc_pcpu *pc = &zone->pcpu[cpu];
		kmalloc_slab *slab = pc->active;
		if (slab != nullptr && kmo_nfree(slab) > 0) {
			obj = kmo_take(slab, reused);
			pc->slab_allocs.inc();
			break;
		}
		kmalloc_slab *alt = pc->alternate;
		if (alt != nullptr && kmo_nfree(alt) > 0) {
#ifdef SLABFUZZ_BUG_SWAP_OUTSIDE_CRIT
			/* zoo: the swap leaves the critical section half-way */
			crit_exit();
			preempt_point();
			crit_enter();
#endif
			pc->alternate = slab;
			pc->active = alt;
			alt->where = KMS_ACTIVE;
			if (slab)
				slab->where = KMS_ALTERNATE;
			continue;
		}
		if ((slab = kmo_take_percpu(pc)) != nullptr) {
			kmo_install(pc, slab, cpu);
			continue;
		}
		bool dipped = false;
		if ((slab = kmo_take_full(zone, &dipped)) != nullptr) {
			want_refill |= dipped;
			kmo_install(pc, slab, cpu);
			continue;
		}
		if ((flags & M_USE_RESERVE) && zone->reserve > 0 &&
		    kenv::current_boot_phase() >= kenv::boot_phase::VM_READY) {
			obj = kmo_alloc_reserve(zone, reused);
			/* Short of spares (just dipped, or since an earlier dip): look for
			 * them again at each reserve allocation, since the memory may be back
			 * (the pageout daemon frees pages as it allocates). */
			want_refill |= zone->nfull.load(std::memory_order_relaxed) <
				       static_cast<size_t>(zone->reserve);
			if (obj != nullptr) {
				pc->slab_allocs.inc();
				break;
			}
			/* No spare, but another thread is refilling them: it does not block, and
			 * its slab is this allocation's way through. Asking the VM for a page
			 * instead may sleep in vmwait, and when the caller was the pageout daemon
			 * (it allocated with M_SYSWAIT then), nothing would free one (ci/fuzz: a reserved-mode pageout deadlock that
			 * zalloc survives, the spare installed while the daemon slept). Wait for
			 * the refill, outside the critical section, and look again: only an
			 * allocation that may wait anyway, and not from inside a refill (the
			 * refill's own allocations, of this zone or another: td_nosleep), which
			 * would wait for itself or for a refill that waits for it. */
			if ((flags & M_WAITOK) && td->td_nosleep == 0 && !td->td_intr &&
			    zone->refilling.load(std::memory_order_acquire) != 0) {
				crit_exit();
				while (zone->refilling.load(std::memory_order_acquire) != 0)
					kenv::cpu_spinwait();
				crit_enter();
				continue;
			}
			/* No spare and none coming (the refills failed): the zone's last resort
			 * is the page tier zalloc's ZONE_INTERRUPT gave these zones, taken
			 * without blocking, once per call. Without it the pageout daemon's
			 * SWAPMETA failed where zalloc's succeeded (ci/fuzz, on the correct
			 * allocator: 3 of 4 refills failed, 159 pages free, under the system
			 * tier's floor but not the interrupt tier's; every thread waited). */
			if (!emergency_tried) {
				emergency_tried = true;
				crit_exit();
				fresh = kmem_slab_alloc(zone, M_RNOWAIT | M_NULLOK | M_USE_RESERVE |
							       M_USE_INTERRUPT_RESERVE);
				crit_enter();
			}
		}
		if (fresh == nullptr) {
			/* A new slab from the VM, outside the critical section: it may sleep. */
			crit_exit();
			fresh = kmem_slab_alloc(zone, flags);
			crit_enter();
		}
		want_refill = true;
		if (fresh == nullptr)
			break;
		/* We may have migrated, or another thread of this CPU may have refilled it. */
		pc = &zone->pcpu[mycpuid()];
		if (pc->active != nullptr && kmo_nfree(pc->active) > 0)
			kmo_push_full(zone, fresh);
		else
			kmo_install(pc, fresh, mycpuid());
	}
	crit_exit();
	--td->td_kmdepth;
	if (want_refill && zone->reserve > 0)
		kmalloc_obj_reserve_refill(zone);
	return obj;
}

inline void kmo_prepare(kmalloc_zone *zone, void *obj, int flags, bool reused)
{
	KMO_UNPOISON(obj, zone->objsize);
	(void)reused;
#ifdef KMO_FILL_CHECK
	const auto *b = static_cast<const unsigned char *>(obj);
	for (size_t i = 0; reused && i < zone->objsize; i++) {
		if (b[i] != KMO_FREE_FILL)
			kenv::check_failed("use-after-free",
					   "zone %s: free object %p was written at offset %zu",
					   zone->name, obj, i);
	}
#endif
	if (flags & M_ZERO) {
#ifdef SLABFUZZ_BUG_ZERO_SKIPPED_ON_REUSE
		/* zoo: only fresh objects are zeroed */
		if (!reused)
#endif
			memset(obj, 0, zone->objsize);
	}
}

}  // namespace

/* ---- the public interface ------------------------------------------------------------------ */

void kmalloc_obj_set_vm_hooks(const kmalloc_vm_hooks *hooks)
{
	kmo_hooks = hooks;
}

size_t kmalloc_obj_size(const struct kmalloc_zone *zone)
{
	return zone->objsize;
}

struct kmalloc_zone *kmalloc_create_obj(const char *name, size_t objsize, size_t limit)
{
	if (objsize == 0 || objsize > KMALLOC_SLAB_SIZE / 4)
		panic("kmalloc_create_obj: %s: object size %zu out of range", name, objsize);
	kmalloc_zone *zone = kmo_zone_new();
	snprintf(zone->name, sizeof(zone->name), "%s", name);
	zone->objsize = (objsize + KMALLOC_OBJ_ALIGN - 1) & ~size_t{KMALLOC_OBJ_ALIGN - 1};
	zone->ncount = kmo_capacity(zone->objsize);
	zone->mag_cap = static_cast<int>(std::clamp<size_t>(KMO_MAG_BYTES / zone->objsize,
							     KMO_MAG_MIN, KMO_MAG));
	zone->limit = limit;
	kenv::spin_init(&zone->spin, "kmalloc_zone");
	for (auto &pc : zone->pcpu)
		kenv::spin_init(&pc.spin, "kmalloc_pcpu");
	if (kenv::curthread() != nullptr) {
		spin_lock(&kmo_zones_spin);
		zone->next_zone = kmo_zones;
		kmo_zones = zone;
		spin_unlock(&kmo_zones_spin);
	} else {
		zone->next_zone = kmo_zones;
		kmo_zones = zone;
	}
	return zone;
}

/* Everything but an allocation from the magazine; entered inside the critical section
 * kmalloc_obj() opened. Out of line, so that the fast path keeps to a few registers. */
static __attribute__((noinline)) void *kmo_alloc_nomag(kmalloc_zone *zone, int flags)
{
	kenv::thread *td = curthread();
	if (flags & M_RNOWAIT)
		td->td_nosleep++;
	kmalloc_pcpu *pc = &zone->pcpu[mycpuid()];
	kmalloc_slab *slab = pc->active;
	void *obj;
	bool reused = false;
	if (slab != nullptr && kmo_nfree(slab) > 0) {
		obj = kmo_take(slab, &reused);
		pc->slab_allocs.inc();
		crit_exit();
	} else {
		obj = kmo_alloc_slow(zone, flags, &reused);
	}
	if (flags & M_RNOWAIT)
		td->td_nosleep--;
	if (obj == nullptr) {
		zone->failed_allocs.fetch_add(1);
		if (!(flags & M_NULLOK))
			panic("kmalloc_obj: %s: out of memory (flags 0x%x)", zone->name, flags);
		return nullptr;
	}
	kmo_prepare(zone, obj, flags, reused);
	return obj;
}

void *kmalloc_obj(size_t size, struct kmalloc_zone *zone, int flags)
{
	kenv::thread *td = curthread();
#ifndef SLABFUZZ_PERF
	if (size > zone->objsize)
		panic("kmalloc_obj: %s: size %zu exceeds object size %zu", zone->name, size,
		      zone->objsize);
#else
	(void)size;
#endif
	crit_enter();
	kmalloc_pcpu *pc = &zone->pcpu[td->td_gd->gd_cpuid];
	preempt_point();
	int n = pc->mag_n;
	if (__builtin_expect(n == 0, 0))
		return kmo_alloc_nomag(zone, flags);	/* leaves the critical section */
	/* The fast path: the object this CPU freed last. Nothing here can block. */
	void *obj = pc->mag[n - 1];
	pc->mag_n = n - 1;
	kmalloc_slab *ms = kmo_slab_of(obj);
	ms->state[kmo_index(ms, reinterpret_cast<uintptr_t>(obj) - ms->base)].store(
	    1, std::memory_order_relaxed);
	crit_exit();
	kmo_prepare(zone, obj, flags, true);
	return obj;
}

void kfree_obj(void *ptr, struct kmalloc_zone *zone)
{
	if (ptr == nullptr)
		return;
	auto *slab = reinterpret_cast<kmalloc_slab *>(reinterpret_cast<uintptr_t>(ptr) &
						      ~KMALLOC_SLAB_MASK);
#ifndef SLABFUZZ_PERF
	if (!kmo_registered(slab))
		panic("kfree_obj: %s: %p is not in any slab", zone->name, ptr);
#endif
	if (slab->magic != KMSLAB_MAGIC)
		panic("kfree_obj: %s: %p: bad slab magic", zone->name, ptr);
	if (slab->zone != zone)
		panic("kfree_obj: %p freed to zone %s but belongs to zone %s", ptr, zone->name,
		      slab->zone->name);
	uintptr_t off = reinterpret_cast<uintptr_t>(ptr) - slab->base;
	size_t i = kmo_index(slab, off);
	if (reinterpret_cast<uintptr_t>(ptr) < slab->base || off >= KMALLOC_SLAB_SIZE ||
	    i * slab->objsize != off || i >= slab->ncount)
		panic("kfree_obj: %s: interior pointer %p", zone->name, ptr);
	/* Only its owner may free an object: a load and a store suffice; two racing
	 * frees of one object (itself a bug) may go unseen. */
#ifndef SLABFUZZ_BUG_NO_DOUBLE_FREE_CHECK
	if (slab->state[i].load(std::memory_order_relaxed) == 0)
		panic("kfree_obj: %s: double free of %p", zone->name, ptr);
#endif
	slab->state[i].store(0, std::memory_order_relaxed);
	kmo_fill_free(ptr, slab->objsize);
	kenv::thread *td = curthread();
	crit_enter();
	preempt_point();
	int cpu = td->td_gd->gd_cpuid;
	kmalloc_pcpu *pc = &zone->pcpu[cpu];
#ifdef SLABFUZZ_BUG_MAG_PUSH_OUTSIDE_CRIT
	/* zoo: the critical section covers the flush only; the push that follows is a
	 * load and two stores an interrupt on this CPU may come between */
	if (__builtin_expect(pc->mag_n >= zone->mag_cap, 0))
		kmo_mag_flush(pc, zone->mag_cap / 2);
	crit_exit();
	int n = pc->mag_n;
	pc->mag[n] = ptr;
	pc->mag_n = n + 1;
	crit_enter();
#else
	int n = pc->mag_n;
	if (__builtin_expect(n >= zone->mag_cap, 0)) {
		kmo_mag_flush(pc, zone->mag_cap / 2);
		n = pc->mag_n;
	}
	pc->mag[n] = ptr;
	pc->mag_n = n + 1;
#endif
	pc->frees.inc();
	if (slab->cpu.load(std::memory_order_relaxed) != cpu)
		pc->remote_frees.inc();
	crit_exit();
}

int kmalloc_obj_boot_slabs(struct kmalloc_zone *zone, void *mem, size_t bytes)
{
	auto addr = reinterpret_cast<uintptr_t>(mem);
	if ((addr & KMALLOC_SLAB_MASK) != 0 || bytes % KMALLOC_SLAB_SIZE != 0 || bytes == 0)
		panic("kmalloc_obj_boot_slabs: %s: %p/%zu is not a whole number of aligned slabs",
		      zone->name, mem, bytes);
	int n = 0;
	for (size_t off = 0; off < bytes; off += KMALLOC_SLAB_SIZE, n++) {
		kmalloc_slab *slab = kmo_slab_init(reinterpret_cast<char *>(mem) + off, zone,
						   KMSLAB_BOOT);
		zone->slabs.fetch_add(1);
		zone->boot_slabs.fetch_add(1);
		kmo_push_full(zone, slab);
	}
	return n;
}

void kmalloc_obj_set_reserve(struct kmalloc_zone *zone, int x)
{
	zone->reserve = x < 0 ? 0 : x;
}

int kmalloc_obj_reserve_refill(struct kmalloc_zone *zone)
{
	if (zone->reserve == 0 || kenv::current_boot_phase() < kenv::boot_phase::VM_READY)
		return 0;
	if (zone->refilling.exchange(1, std::memory_order_acquire))
		return 0;
	kenv::thread *td = curthread();
	int added = 0;
#ifdef SLABFUZZ_BUG_REFILL_BLOCKS
	const int rflags = M_WAITOK;		/* zoo: the refill may sleep */
#else
	/* The spares are the VM's reserve: refilled from the system tier (pages the VM
	 * keeps for itself), never blocking. From the normal tier, a refill under
	 * pressure failed again and again while reserve allocations used the spares up,
	 * until the pageout daemon's SWAPMETA found none and slept in vmwait (ci/fuzz, on
	 * the correct allocator: a reserved-mode pageout deadlock zalloc survives). */
	const int rflags = M_RNOWAIT | M_NULLOK | M_USE_RESERVE;
#endif
	td->td_nosleep++;	/* "without blocking" is checked, not assumed */
	for (;;) {
		spin_lock(&zone->spin);
		bool low = zone->nfull < static_cast<size_t>(zone->reserve);
		spin_unlock(&zone->spin);
		if (!low)
			break;
		zone->refills_tried.fetch_add(1);
		kmalloc_slab *slab = kmem_slab_alloc(zone, rflags);
		if (slab == nullptr) {
			zone->refills_failed.fetch_add(1);
			break;
		}
		kmo_push_full(zone, slab);
		added++;
	}
	td->td_nosleep--;
	zone->refilling.store(0, std::memory_order_release);
	return added;
}

void kmalloc_obj_drain_cpu(struct kmalloc_zone *zone)
{
	crit_enter();
	kmalloc_pcpu *pc = &zone->pcpu[mycpuid()];
	kmo_mag_flush(pc, pc->mag_n);
	kmalloc_slab *slabs[2] = {pc->active, pc->alternate};
	pc->active = nullptr;
	pc->alternate = nullptr;
	spin_lock(&pc->spin);
	for (kmalloc_slab *s : slabs) {
		if (s == nullptr)
			continue;
		if (kmo_nfree(s) > 0)
			kmo_list_push(&pc->partial, s, KMS_PARTIAL);
		else
			kmo_list_push(&pc->empty, s, KMS_EMPTY);
	}
	spin_unlock(&pc->spin);
	crit_exit();
}

/* Moves every all-free slab of a list (its lock held) onto *collected. */
static void kmo_collect_free(kmalloc_slab **head, kmalloc_slab **collected)
{
	for (kmalloc_slab **pp = head; *pp;) {
		kmalloc_slab *s = *pp;
		if (kmo_nfree(s) == s->ncount) {
			*pp = s->next;
			s->next = *collected;
			*collected = s;
		} else {
			pp = &s->next;
		}
	}
}

int kmalloc_obj_poll(struct kmalloc_zone *zone)
{
	kmalloc_slab *collected = nullptr;
	for (int cpu = 0; cpu < kenv::ncpus(); cpu++) {
		kmalloc_pcpu *pc = &zone->pcpu[cpu];
#ifdef SLABFUZZ_BUG_POLL_UNLOCKED_PCPU
		/* zoo: the lists are walked without their CPU's lock, as if only the poller
		 * unlinked slabs from them (the owner takes partial slabs too) */
		kmo_collect_free(&pc->partial, &collected);
		kmo_collect_free(&pc->empty, &collected);
#else
		spin_lock(&pc->spin);
		kmo_collect_free(&pc->partial, &collected);
		kmo_collect_free(&pc->empty, &collected);
		spin_unlock(&pc->spin);
#endif
		preempt_point();
	}
	kmalloc_slab *retire = nullptr;
	spin_lock(&zone->spin);
	kmo_collect_free(&zone->rsv_spent, &collected);
	if (zone->rsv_slab != nullptr && kmo_nfree(zone->rsv_slab) == zone->rsv_slab->ncount) {
		zone->rsv_slab->next = collected;
		collected = zone->rsv_slab;
		zone->rsv_slab = nullptr;
	}
	while (collected) {
		kmalloc_slab *s = collected;
		collected = s->next;
		s->cpu.store(-1, std::memory_order_relaxed);
		kmo_list_push(&zone->full, s, KMS_FULL);
		zone->nfull++;
	}
	/* Retire the surplus beyond the reserve (and one spare), never a boot slab. */
	size_t keep = static_cast<size_t>(zone->reserve) + 1;
	for (kmalloc_slab **pp = &zone->full; *pp && zone->nfull > keep;) {
		kmalloc_slab *s = *pp;
#ifndef SLABFUZZ_BUG_POLLER_FREES_BOOT_SLAB
		if (s->flags & KMSLAB_BOOT) {
			pp = &s->next;
			continue;
		}
#endif
		*pp = s->next;
		zone->nfull--;
		s->next = retire;
		retire = s;
	}
	spin_unlock(&zone->spin);
	int n = 0;
	while (retire) {
		kmalloc_slab *s = retire;
		retire = s->next;
		kmem_slab_free(zone, s);
		n++;
	}
	/* The poller runs outside critical sections and locks: a good time to top the
	 * reserve back up, without blocking, if memory came back since the last dip. */
	if (zone->reserve > 0 && zone->nfull.load() < static_cast<size_t>(zone->reserve))
		kmalloc_obj_reserve_refill(zone);
	return n;
}

int kmalloc_obj_poll_all(void)
{
	int n = 0;
	/* One zone at a time, pinned (pollers) before the list lock is dropped: a zone
	 * being destroyed waits for the poll before it leaves the list, so the pinned zone's
	 * link is still good when the lock is taken again. */
	spin_lock(&kmo_zones_spin);
	for (kmalloc_zone *z = kmo_zones; z;) {
		if (z->dying) {
			z = z->next_zone;
			continue;
		}
		z->pollers.fetch_add(1, std::memory_order_acquire);
		spin_unlock(&kmo_zones_spin);
		n += kmalloc_obj_poll(z);
		spin_lock(&kmo_zones_spin);
		kmalloc_zone *next = z->next_zone;
		z->pollers.fetch_sub(1, std::memory_order_release);
		z = next;
	}
	spin_unlock(&kmo_zones_spin);
	return n;
}

/* Calls fn(slab) for every slab of the zone, wherever it is (active, alternate, a CPU's
 * partial or empty list, the full list, the reserve slab, the spent list); fn may free
 * the slab it is given. */
template <class Fn>
static void kmo_foreach_slab(kmalloc_zone *zone, Fn &&fn)
{
	auto each = [&fn](kmalloc_slab *s) {
		while (s != nullptr) {
			kmalloc_slab *next = s->next;
			fn(s);
			s = next;
		}
	};
	for (int cpu = 0; cpu < kenv::MAXCPU; cpu++) {
		kmalloc_pcpu *pc = &zone->pcpu[cpu];
		if (pc->active)
			fn(pc->active);
		if (pc->alternate)
			fn(pc->alternate);
		each(pc->partial);
		each(pc->empty);
	}
	each(zone->full);
	each(zone->rsv_spent);
	if (zone->rsv_slab)
		fn(zone->rsv_slab);
}

void kmalloc_destroy_obj(struct kmalloc_zone *zone)
{
	kmalloc_zone_stats st = kmalloc_obj_counters(zone);
	if (st.inuse != 0)
		panic("kmalloc_destroy_obj: zone %s has %llu live objects", zone->name,
		      static_cast<unsigned long long>(st.inuse));
	/* Out of the poller's sight first; a poll that pinned the zone before that must
	 * finish before the slabs are collected (it moves and retires slabs). The zone
	 * stays on the list until it is gone, so that kmalloc_obj_reset() still finds it
	 * if a run is abandoned in the middle. */
	bool kthread = kenv::curthread() != nullptr;
	if (kthread)
		spin_lock(&kmo_zones_spin);
	zone->dying = true;
	if (kthread)
		spin_unlock(&kmo_zones_spin);
	while (zone->pollers.load(std::memory_order_acquire) != 0)
		kenv::cpu_spinwait();
	for (auto &pc : zone->pcpu)	/* quiescent: every CPU's magazine back to its slabs */
		kmo_mag_flush(&pc, pc.mag_n);
	kmo_foreach_slab(zone, [zone](kmalloc_slab *s) {
		if (kmo_nfree(s) != s->ncount)
			panic("kmalloc_destroy_obj: zone %s: slab %p still has live objects",
			      zone->name, static_cast<void *>(s));
	});
	kmo_foreach_slab(zone, [zone](kmalloc_slab *s) {
		if (s->flags & KMSLAB_BOOT) {
			/* Boot memory goes back to its owner, never to the page source. */
			kmo_unregister(s);
			s->magic = 0;
			KMO_UNPOISON(s, KMALLOC_SLAB_SIZE);
		} else {
			kmem_slab_free(zone, s);
		}
	});
	if (kthread)
		spin_lock(&kmo_zones_spin);
	for (kmalloc_zone **pp = &kmo_zones; *pp; pp = &(*pp)->next_zone) {
		if (*pp == zone) {
			*pp = zone->next_zone;
			break;
		}
	}
	kmo_zone_recycle(zone);
	if (kthread)
		spin_unlock(&kmo_zones_spin);
}

struct kmalloc_zone *kmalloc_obj_owner(const void *ptr)
{
	auto *slab = reinterpret_cast<const kmalloc_slab *>(reinterpret_cast<uintptr_t>(ptr) &
							    ~KMALLOC_SLAB_MASK);
	if (!kmo_registered(slab))
		return nullptr;
	return slab->zone;
}

void kmalloc_obj_reset(void)
{
	/* A new kernel: a run abandoned in the middle may have left a thread unwound while
	 * it held one of these (threads are switched at any shared access). */
	kenv::spin_init(&kmo_zones_spin, "kmo_zones");
	kenv::spin_init(&kmo_tab_spin, "kmo_tab");
	for (size_t i : kmo_tab_touched)
		kmo_slabtab[i].store(nullptr, std::memory_order_relaxed);
	kmo_tab_touched.clear();
	kmo_tab_live.store(0);
	/* Zones a failed run abandoned: their slabs went back with the page source. Every
	 * descriptor is free again, wherever the run left it, and handed out in order. */
	kmo_zones = nullptr;
	kmo_zones_free = nullptr;
	KMO_UNPOISON(kmo_zone_pool, kmo_pool_high * sizeof(kmalloc_zone));
	kmo_pool_next = 0;
	kmo_hooks = nullptr;
}
