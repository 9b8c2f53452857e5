/*
 * kmalloc_obj.h - the per-CPU slab allocator for fixed-size objects, modelled on
 * DragonFly BSD's kmalloc_obj, with the two additions that let it replace zalloc:
 *
 *  (A) boot slabs: kmalloc_obj_boot_slabs() registers caller-provided memory (a
 *      static array) as full slabs of a zone before the VM can supply pages. Such
 *      slabs are marked KMSLAB_BOOT and never go back to the page source: not by
 *      the poller, not by zone destruction.
 *  (B) a spare-slab reserve: a zone keeps X all-free slabs on its full list.
 *      Ordinary allocations never take the last X (once the VM is up);
 *      M_USE_RESERVE allocations may, through one reserve slab the zone shares
 *      among all CPUs (so that no spare is stranded in one CPU's cache); objects
 *      freed into a drained reserve slab serve them again before another spare is
 *      taken. Whenever the zone takes a new slab, dips into the reserve, or makes a
 *      reserve allocation while short of X spares, it tries to top the reserve back
 *      up to X without blocking, after leaving its critical section.
 *
 * Misuse is detected with a panic naming the zone: double free, free to the wrong
 * zone, free of an interior pointer, free of a pointer no slab owns, destroy of a zone
 * with live objects.
 */
#ifndef SLABFUZZ_ALLOCATOR_KMALLOC_OBJ_KMALLOC_OBJ_H_
#define SLABFUZZ_ALLOCATOR_KMALLOC_OBJ_KMALLOC_OBJ_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/malloc.h"

#define KMALLOC_SLAB_SIZE	((size_t)128 * 1024)
#define KMALLOC_SLAB_MASK	(KMALLOC_SLAB_SIZE - 1)
#define KMALLOC_SLAB_PAGES	(KMALLOC_SLAB_SIZE / kenv::PAGE_SIZE)
#define KMALLOC_OBJ_ALIGN	64		/* cache line */
#define KMALLOC_MAX_DEPTH	6		/* nested slow paths before a panic */

struct kmalloc_zone;

struct kmalloc_zone_stats {
	const char *name;
	size_t objsize;
	size_t objs_per_slab;
	uint64_t allocs, frees, remote_frees, inuse;
	uint64_t slabs;			/* slabs the zone holds (boot included) */
	uint64_t boot_slabs;
	uint64_t slabs_allocated, slabs_freed;	/* to and from the page source */
	uint64_t reserve_target;	/* X */
	uint64_t reserve_level;		/* all-free slabs on the zone's full list */
	uint64_t reserve_objects;	/* free objects in the shared reserve slab */
	uint64_t reserve_dips, refills_tried, refills_failed;
	uint64_t failed_allocs;
	uint64_t percpu_allocs[kenv::MAXCPU];
	uint64_t percpu_frees[kenv::MAXCPU];
};

/*
 * The VM's part in taking a slab from, or giving it back to, the page source: a
 * consumer (allocator/vm) installs hooks that allocate the MAP entry and PV entries a
 * new slab needs (themselves kmalloc_obj allocations: the recursion of problem B).
 * map returns false if it could not (nonblocking request); cookie is kept with the slab.
 */
struct kmalloc_vm_hooks {
	bool (*map)(struct kmalloc_zone *zone, void *chunk, int flags, void **cookie);
	void (*unmap)(struct kmalloc_zone *zone, void *chunk, void *cookie);
};
void kmalloc_obj_set_vm_hooks(const kmalloc_vm_hooks *hooks);

struct kmalloc_zone *kmalloc_create_obj(const char *name, size_t objsize, size_t limit);
void kmalloc_destroy_obj(struct kmalloc_zone *zone);

void *kmalloc_obj(size_t size, struct kmalloc_zone *zone, int flags);
void kfree_obj(void *ptr, struct kmalloc_zone *zone);

/* (A): mem must be KMALLOC_SLAB_SIZE-aligned; bytes a multiple of it. Returns the
 * number of slabs registered. */
int kmalloc_obj_boot_slabs(struct kmalloc_zone *zone, void *mem, size_t bytes);
/* (B): keep x spare all-free slabs. */
void kmalloc_obj_set_reserve(struct kmalloc_zone *zone, int x);
/* Try, without blocking, to bring the reserve up to X; returns slabs added. */
int kmalloc_obj_reserve_refill(struct kmalloc_zone *zone);

/* Move the calling CPU's active and alternate slabs of zone back to its lists. */
void kmalloc_obj_drain_cpu(struct kmalloc_zone *zone);
/* The poller's work (drivers run it from a kernel thread of their own): collect
 * all-free slabs, retire the surplus beyond the reserve, refill the reserve. Returns
 * slabs given back to the page source. */
int kmalloc_obj_poll(struct kmalloc_zone *zone);
int kmalloc_obj_poll_all(void);

struct kmalloc_zone_stats kmalloc_obj_stats(const struct kmalloc_zone *zone);
/* The same without the zone lock, and so without reserve_objects (left 0): for
 * checkers that read the counters around every allocation. */
struct kmalloc_zone_stats kmalloc_obj_counters(const struct kmalloc_zone *zone);
/* A number that changes whenever the zone allocates, frees, or gains, loses or moves a
 * slab to or from its full list: cheap (no lock), for checkers that skip a zone nobody
 * touched since they last looked. */
uint64_t kmalloc_obj_activity(const struct kmalloc_zone *zone);
/* Checks every slab's indices, lists and counters against each other, and with deep
 * also every object's state byte and free-ring entry; returns the problems found
 * (empty if consistent). Only when the zone is quiescent. */
std::vector<std::string> kmalloc_obj_check(const struct kmalloc_zone *zone, bool deep = true);
/* The zone that owns ptr's slab, or NULL (for oracles). */
struct kmalloc_zone *kmalloc_obj_owner(const void *ptr);
/* The zone's object size (the requested size rounded up to a cache line). */
size_t kmalloc_obj_size(const struct kmalloc_zone *zone);
/* Between runs: forget every slab registration and free every zone left alive
 * (after page_source_teardown() took their slabs back). */
void kmalloc_obj_reset(void);

#endif  // SLABFUZZ_ALLOCATOR_KMALLOC_OBJ_KMALLOC_OBJ_H_
