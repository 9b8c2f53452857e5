/*
 * kmalloc.h - the general-purpose kernel malloc, kmalloc(size, type, flags) and
 * kfree(ptr, type), built on kmalloc_obj: sizes up to KMALLOC_MAX_CLASS go to one of
 * the power-of-two size-class zones ("kmalloc-64" ... "kmalloc-32768"); larger sizes
 * come straight from the page source, page-aligned, up to KMALLOC_MAX_LARGE. Each malloc_type accounts what
 * it holds (bytes, allocations, calls, failures) per CPU, and has a limit: beyond it
 * M_NULLOK gets NULL, anything else panics with the type's name.
 *
 * Invariants: a type's memuse is the sum of the class sizes (or page-rounded sizes)
 * of its live allocations; a large allocation is known by its first page in the page
 * map until kfree(); misuse panics: double free and interior pointers (from
 * kmalloc_obj or the page map), a pointer kmalloc never gave, a large allocation
 * freed with another type.
 */
#ifndef SLABFUZZ_ALLOCATOR_KMALLOC_KMALLOC_H_
#define SLABFUZZ_ALLOCATOR_KMALLOC_KMALLOC_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/malloc.h"

#define KMALLOC_MIN_CLASS	64
#define KMALLOC_MAX_CLASS	32768
#define KMALLOC_NCLASSES	10	/* 64 .. 32768 */
#define KMALLOC_MAX_LARGE	((size_t)128 * 1024)	/* the page source's longest run */

struct kmalloc_zone;

struct alignas(64) malloc_type_pcpu {	/* written by the own CPU only, in crit */
	kenv::wcounter<int64_t> memuse;	/* bytes */
	kenv::wcounter<int64_t> inuse;	/* allocations */
	kenv::wcounter<uint64_t> calls;
};

struct malloc_type {
	const char *ks_shortdesc;
	size_t ks_limit;		/* bytes; 0: none */
	std::atomic<uint64_t> ks_failed;
	malloc_type_pcpu ks_pcpu[kenv::MAXCPU];
};

/* Set up a type (MALLOC_DEFINE). */
void kmalloc_type_init(struct malloc_type *type, const char *name, size_t limit);

/* Create the size-class zones; once, from a kernel thread or before any runtime. */
void kmalloc_init(void);
/* Destroy the size-class zones (from a kernel thread, with nothing allocated), giving
 * their slabs back; kmalloc_init() may follow. */
void kmalloc_fini(void);
void *kmalloc(size_t size, struct malloc_type *type, int flags);
void kfree(void *ptr, struct malloc_type *type);
/* The size really given for a request of size bytes (class size or whole pages). */
size_t kmalloc_good_size(size_t size);
/* The class zone serving size (NULL for a large size), for drains and checks. */
struct kmalloc_zone *kmalloc_class_zone(size_t size);
/* Return every class zone's surplus slabs (the poller's work). */
int kmalloc_poll(void);

struct kmalloc_type_stats {
	int64_t memuse, inuse;
	uint64_t calls, failed;
};
kmalloc_type_stats kmalloc_type_stats_get(const struct malloc_type *type);
/* Between runs, after page_source_teardown(): forget the class zones and every large
 * allocation (their pages are already back). */
void kmalloc_reset(void);

#endif  // SLABFUZZ_ALLOCATOR_KMALLOC_KMALLOC_H_
