/*
 * zalloc.h - the legacy zone allocator, in behaviour as DragonFly BSD's vm_zone.c:
 * the allocator kmalloc_obj is meant to replace, and the baseline every guarantee is
 * compared against.
 *
 *  - zbootinit() threads a caller's static array onto a zone's free list, usable
 *    before the VM is up; a later zinitna() keeps those items and lets the zone grow;
 *  - zalloc()/zfree(): per-CPU free lists inside a critical section, refilled from
 *    and drained to the zone's global pool in batches (ZONE_BURST) under the zone
 *    spinlock; the global pool keeps zfreemin items back, used only when the zone
 *    cannot grow;
 *  - ZONE_INTERRUPT: room for nentries reserved up front (zpagemax pages), pages
 *    filled on demand from the interrupt tier without blocking, never freed; NULL once
 *    the cap is reached;
 *  - ZONE_USE_RESERVE: growth takes pages from the system tier;
 *  - ZONE_PANICFAIL: panic instead of returning NULL.
 * Pages a zone took are never returned (upstream zalloc never frees), except by
 * zdestroy().
 *
 * Beyond upstream (which checks only under INVARIANTS), a double free, a free of a
 * foreign or interior pointer and a free to the wrong zone panic, naming the zone;
 * freed items are poisoned for ASan, or filled with a pattern checked on reuse.
 *
 * Invariants (zcheck): per-CPU counts + global count == free items; free + in use ==
 * ztotal; every listed item belongs to the zone and is marked free; zpagecount <=
 * zpagemax.
 */
#ifndef SLABFUZZ_ALLOCATOR_ZALLOC_ZALLOC_H_
#define SLABFUZZ_ALLOCATOR_ZALLOC_ZALLOC_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/malloc.h"

#define ZONE_INTERRUPT		0x0001	/* preallocated room, interrupt-tier pages */
#define ZONE_PANICFAIL		0x0002	/* panic if the allocation fails */
#define ZONE_USE_RESERVE	0x0004	/* growth may use the system page tier */
#define ZONE_BOOT		0x0010	/* zbootinit()ed (internal) */
#define ZONE_ALLOCATED		0x0020	/* struct allocated by zinit() (internal) */

#define ZONE_ROUNDING		16	/* item sizes are multiples of this */
#define ZONE_BURST		32	/* items moved per batch between CPU and pool */
#define ZONE_CHUNK_PAGES	4	/* pages per growth of an ordinary zone */

struct zchunk;

/* Counters below are kenv::wcounter: one writer (the owning CPU in crit, or the
 * holder of zspin), read by statistics at any time. */
struct alignas(64) vm_zpcpu {
	void *zitems;			/* per-CPU free list (own CPU, in crit) */
	kenv::wcounter<long> zfreecnt;
	kenv::wcounter<uint64_t> znalloc;
	kenv::wcounter<uint64_t> znfree;
};

struct vm_zone {
	kenv::spinlock zspin;		/* global pool, chunk list, growth counters */
	const char *zname;
	size_t zsize;			/* item size */
	int zflags;
	void *zitems;			/* global free list */
	kenv::wcounter<long> zfreecnt;
	long zfreemin;			/* kept back for when the zone cannot grow */
	kenv::wcounter<long> ztotal;	/* items the zone owns (boot items included) */
	long zmax;			/* cap on grown items (0: none) */
	kenv::wcounter<long> zbootitems;
	kenv::wcounter<size_t> zpagecount;	/* ZONE_INTERRUPT: pages filled */
	size_t zpagemax;			/* ... and reserved */
	kenv::wcounter<size_t> zchunks;
	std::atomic<uint64_t> zfailures;
	zchunk *zchunk_list;
	vm_zone *znext;			/* all zones (for zalloc_reset) */
	vm_zpcpu zpcpu[kenv::MAXCPU];
};
typedef struct vm_zone *vm_zone_t;

/* Allocate and initialize a zone (nentries: the cap of a ZONE_INTERRUPT zone, or of
 * any zone when nonzero). */
vm_zone_t zinit(const char *name, size_t size, long nentries, int flags);
/* Initialize a zone in caller storage, keeping items a zbootinit() gave it. */
int zinitna(vm_zone_t z, const char *name, size_t size, long nentries, int flags);
/* Thread nitems items of size bytes from item onto the zone's free list; callable
 * before the VM is up, before or after zinitna(). Those items are never freed. */
void zbootinit(vm_zone_t z, const char *name, size_t size, void *item, long nitems);
void zdestroy(vm_zone_t z);

/* As upstream: NULL when the zone cannot grow; an ordinary zone may sleep for pages. */
void *zalloc(vm_zone_t z);
/* With malloc(9) flags (the backend interface): M_RNOWAIT never sleeps, M_ZERO zeroes,
 * without M_NULLOK a failure panics. A ZONE_INTERRUPT zone never sleeps, except for
 * an M_WAITOK caller without M_NULLOK, which waits for a page rather than fail
 * (upstream's callers loop on vm_wait()). */
void *zalloc_flags(vm_zone_t z, int flags);
void zfree(vm_zone_t z, void *item);

/* Give the calling CPU's free list back to the global pool. */
void zalloc_drain_cpu(vm_zone_t z);

struct zalloc_stats {
	const char *name;
	size_t size;
	long limit;		/* zmax */
	long total;		/* items owned */
	long used;		/* items handed out */
	long free;		/* global + per-CPU */
	uint64_t requests;	/* zalloc calls that returned an item */
	uint64_t frees;
	uint64_t failures;
	size_t pages, pagemax, chunks;
	long boot_items;
};
zalloc_stats zalloc_stats_get(vm_zone_t z);
/* The zone's invariants; deep walks every list and item. Empty when consistent.
 * Only when the zone is quiescent. */
std::vector<std::string> zcheck(vm_zone_t z, bool deep = true);
/* The zone that owns ptr (any byte of an item), or NULL. */
vm_zone_t zalloc_owner(const void *ptr);
/* Between runs, after page_source_teardown() took the pages back: forget every zone
 * (freeing those zinit() allocated). */
void zalloc_reset(void);

#endif  // SLABFUZZ_ALLOCATOR_ZALLOC_ZALLOC_H_
