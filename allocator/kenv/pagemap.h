/*
 * pagemap.h - which allocator structure owns a page: a two-level, lock-free map from
 * a page's address to a descriptor (struct pagemap_owner), for allocators that must
 * tell, from any pointer, whether and where they handed it out (zalloc's pages and
 * boot arrays, kmalloc's large allocations).
 *
 * Invariants: lookups never lock and never fail for a registered page; a leaf of the
 * map, once published, lives as long as the process (so a racing lookup never reads
 * freed memory); an owner is registered for a page by at most one allocator at a time
 * (pagemap_set refuses a page that already has one).
 */
#ifndef SLABFUZZ_ALLOCATOR_KENV_PAGEMAP_H_
#define SLABFUZZ_ALLOCATOR_KENV_PAGEMAP_H_

#include <cstddef>
#include <cstdint>

namespace kenv {

/* What a registered page points to; each allocator embeds it first in its own
 * descriptor and tells its kinds apart by pm_kind. */
struct pagemap_owner {
	int pm_kind;
};

enum : int {
	PM_ZALLOC = 1,		/* a zalloc chunk or boot array (struct zchunk) */
	PM_KMALLOC_LARGE = 2,	/* a kmalloc allocation straight from the page source */
};

/* Registers owner for every page of [addr, addr + bytes); false (nothing changed)
 * if any of them already has an owner. */
bool pagemap_set(const void *addr, size_t bytes, pagemap_owner *owner);
/* Forgets the pages of [addr, addr + bytes). */
void pagemap_clear(const void *addr, size_t bytes);
/* The owner of the page holding addr, or NULL. */
pagemap_owner *pagemap_get(const void *addr);

}  // namespace kenv

#endif  // SLABFUZZ_ALLOCATOR_KENV_PAGEMAP_H_
