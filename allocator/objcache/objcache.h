/*
 * objcache.h - the object cache, in behaviour as DragonFly BSD's kern_objcache.c:
 * constructed objects cached per CPU in magazines (Bonwick's magazine layer) in front
 * of a back-end allocator.
 *
 *  - per CPU a loaded and a previous magazine; a get takes from the loaded one, swaps
 *    in the previous one when it is empty, and otherwise trades an empty magazine for
 *    a full one at the depot; a put mirrors it (an empty magazine from the depot, or,
 *    if there is none, the object goes back to the back end);
 *  - the constructor runs only when an object comes from the back end, the destructor
 *    only when it goes back: cached objects stay constructed;
 *  - a cluster limit is an object budget (unallocated_objects): when it is spent the
 *    cache reports "exhausted" once, then a get sleeps (M_WAITOK) until a put, or
 *    returns NULL;
 *  - beyond upstream, a double put and a put of an object the cache never gave panic,
 *    naming the cache (every object's state is kept in a side table, not in the
 *    object, whose constructed contents belong to the caller).
 *
 * Invariants (objcache_check): objects from the back end == outstanding + cached;
 * budget spent == objects from the back end; no magazine holds more than its
 * capacity; depot lists hold only full or only empty magazines; every cached object
 * is marked cached and belongs to the cache.
 */
#ifndef SLABFUZZ_ALLOCATOR_OBJCACHE_OBJCACHE_H_
#define SLABFUZZ_ALLOCATOR_OBJCACHE_OBJCACHE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/malloc.h"
#include "allocator/kmalloc/kmalloc.h"

#define OBJCACHE_UNLIMITED	0x40000000	/* cluster_limit 0 */
#define OBJCACHE_DEPOT_MAGS	8		/* spare empty magazines at creation */

struct objcache;

typedef bool objcache_ctor_fn(void *obj, void *privdata, int ocflags);
typedef void objcache_dtor_fn(void *obj, void *privdata);
typedef void *objcache_alloc_fn(void *allocator_args, int ocflags);
typedef void objcache_free_fn(void *obj, void *allocator_args);

/* Arguments of the kmalloc back end (objcache_malloc_alloc/free). */
struct objcache_malloc_args {
	size_t objsize;
	struct malloc_type *mtype;
};
void *objcache_malloc_alloc(void *allocator_args, int ocflags);
void objcache_malloc_free(void *obj, void *allocator_args);

/* mag_capacity: objects per magazine (0: 64). cluster_limit: the object budget
 * (0: unlimited). */
struct objcache *objcache_create(const char *name, int cluster_limit, int mag_capacity,
				 objcache_ctor_fn *ctor, objcache_dtor_fn *dtor,
				 void *privdata, objcache_alloc_fn *alloc,
				 objcache_free_fn *free, void *allocator_args);
/* A cache over kmalloc(objsize, mtype) (calls kmalloc_init()). */
struct objcache *objcache_create_mbacked(struct malloc_type *mtype, size_t objsize,
					 int cluster_limit, int mag_capacity,
					 objcache_ctor_fn *ctor, objcache_dtor_fn *dtor,
					 void *privdata);
void *objcache_get(struct objcache *oc, int ocflags);
void objcache_put(struct objcache *oc, void *obj);
/* The object is not reusable: destruct it and give it back to the back end. */
void objcache_dtor(struct objcache *oc, void *obj);
/* Give the calling CPU's cached objects back to the back end. */
void objcache_drain_cpu(struct objcache *oc);
/* Give one full depot magazine's objects back to the back end, for each cache of the
 * list that has one; returns the objects freed. */
int objcache_reclaimlist(struct objcache *oc[], int nlist);
/* The same over every cache (the poller's work). */
int objcache_reclaim_all(void);
/* Panics if objects are outstanding; gives everything cached back. */
void objcache_destroy(struct objcache *oc);

struct objcache_stats {
	const char *name;
	int mag_capacity;
	int64_t cluster_limit, unallocated;
	uint64_t gets, puts, gets_null;
	uint64_t backend_allocs, backend_frees, ctors, dtors;
	int64_t outstanding;	/* gets - puts - objcache_dtor()s */
	int64_t cached;		/* objects in magazines */
	int exhausted_reported;	/* 0 or 1: "exhausted" is reported once */
};
objcache_stats objcache_stats_get(struct objcache *oc);
/* Only when the cache is quiescent; deep also walks every cached object. */
std::vector<std::string> objcache_check(struct objcache *oc, bool deep = true);
/* The cache that gave obj (and has not taken it back to its back end), or NULL. */
struct objcache *objcache_owner(const void *obj);
/* Between runs: forget every cache (their objects' memory went back with the page
 * source's teardown). */
void objcache_reset(void);

#endif  // SLABFUZZ_ALLOCATOR_OBJCACHE_OBJCACHE_H_
