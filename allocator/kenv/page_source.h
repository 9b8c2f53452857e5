/*
 * page_source.h - the VM's page allocator as the allocators see it.
 *
 * A budget of 4 KiB pages handed out in chunks (a single page, or a 128 KiB
 * kmalloc_obj slab aligned to its size), with DragonFly's three tiers of
 * vm_page_alloc():
 *   VM_TIER_NORMAL     must leave v_free_reserved pages free;
 *   VM_TIER_SYSTEM     (M_USE_RESERVE) may go down to v_interrupt_free_min;
 *   VM_TIER_INTERRUPT  (M_USE_INTERRUPT_RESERVE) may take the last page.
 * A blocking request that cannot be served calls vm_wait(): it wakes the pageout
 * daemon and sleeps until pages are freed. Before boot phase VM_READY the source
 * gives nothing, and a blocking request panics (nothing could ever wake it).
 *
 * Fault injection (fail the Nth request, fail with a seeded rate, fail only some
 * tiers) applies to non-blocking requests; blocking requests see only real scarcity.
 *
 * Invariant: budget == free + in use + withheld, at every moment; every chunk in use
 * is recorded with its owner, so that a teardown names each one never returned.
 */
#ifndef SLABFUZZ_ALLOCATOR_KENV_PAGE_SOURCE_H_
#define SLABFUZZ_ALLOCATOR_KENV_PAGE_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kenv {

inline constexpr size_t PAGE_SIZE = 4096;

enum vm_tier : int {
	VM_TIER_NORMAL = 0,
	VM_TIER_SYSTEM = 1,
	VM_TIER_INTERRUPT = 2,
};

/* Allocates npages contiguous pages aligned to align bytes; NULL if it may not wait.
 * Under ASan a chunk comes addressable, or, with poisoned, still poisoned (the caller
 * unpoisons what it uses: a slab allocator that poisons its free objects anyway saves
 * writing the chunk's shadow twice). */
void *vm_chunk_alloc(size_t npages, size_t align, vm_tier tier, bool canwait,
		     const char *owner, bool poisoned = false);
/* Returns a chunk; poisoned: the caller has poisoned all of it already. */
void vm_chunk_free(void *chunk, size_t npages, bool poisoned = false);
/* Wake the pageout daemon and sleep until pages are freed (or a short timeout). */
void vm_wait(const char *wmesg);
/* The same, unless pages were freed since generation gen (no lost wakeup). */
void vm_wait_since(uint64_t gen, const char *wmesg);
/* Free pages as the tiers count them (withheld pages are not free). */
size_t vm_free_count();
/* The channel the pageout daemon sleeps on, and its target of free pages: the
 * configured free_target, or more while a sleeping request needs more. */
const void *vm_pageout_chan();
/* How many times vm_wait() asked for the pageout daemon: a daemon compares it before
 * sleeping with the value it saw when it last looked at free memory. */
uint64_t vm_pageout_requests();
size_t vm_free_target();

/* ---- the driver's side ------------------------------------------------------ */

struct PageSourceConfig {
	size_t budget_pages = 4096;
	size_t free_reserved = 64;		/* v_free_reserved */
	size_t interrupt_free_min = 16;		/* v_interrupt_free_min */
	size_t free_target = 128;		/* pageout works until this many are free */
	uint64_t fail_nth = 0;			/* fail the Nth non-blocking request (1-based) */
	uint32_t fail_rate_ppm = 0;		/* fail non-blocking requests at this rate */
	uint32_t fail_tier_mask = 0x7;		/* injected failures hit these tiers */
	uint64_t seed = 1;
};

struct PageSourceStats {
	size_t budget = 0, free = 0, in_use = 0, withheld = 0;
	uint64_t allocs = 0, frees = 0, failures = 0, injected = 0, waits = 0;
	uint64_t chunks_in_use = 0;
};

void page_source_init(const PageSourceConfig &cfg);
/* Memory pressure: withhold up to `pages` free pages, as requests of `tier` would
 * take them (never below that tier's floor: user memory is VM_TIER_NORMAL; the
 * default takes the very last page); relief gives them back. */
void page_source_pressure(size_t pages, vm_tier tier = VM_TIER_INTERRUPT);
void page_source_relief(size_t pages);
/* Fail the next n non-blocking requests (of the configured tiers). */
void page_source_fail_next(uint32_t n);
PageSourceStats page_source_stats();
/* Names every chunk still in use ("0x... 32 pages owner"), frees them all and
 * resets the source. Empty when everything came home. */
std::vector<std::string> page_source_teardown();
/* The same, as a driver's verdict: false with a crash title ("slabfuzz: leak: ...")
 * and one report line per chunk if anything never came home. */
bool page_source_teardown_clean(std::string *title, std::string *report);

}  // namespace kenv

#endif  // SLABFUZZ_ALLOCATOR_KENV_PAGE_SOURCE_H_
