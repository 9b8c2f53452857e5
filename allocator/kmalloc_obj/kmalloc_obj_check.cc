/*
 * kmalloc_obj_check.cc - what reads kmalloc_obj's state without changing it: the
 * statistics (counters, stats, activity) and the invariant checker, which the fuzzers'
 * oracle runs after nearly every operation (see kmalloc_obj.h for what each promises).
 *
 * None of it takes a lock but kmalloc_obj_stats() (the zone's, for the reserve slab),
 * and none of it writes allocator state: counters are read racily, as a kernel's
 * statistics are; the checker is meant for a quiescent zone. Built without ASan's
 * checks and coverage (KENV_CHECKER; in the fuzzing builds the whole file, see
 * kmalloc_obj_impl.h).
 */
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"
#include "allocator/kmalloc_obj/kmalloc_obj_impl.h"

using kenv::spin_lock;
using kenv::spin_unlock;

KENV_CHECKER uint64_t kmalloc_obj_activity(const struct kmalloc_zone *zone)
{
	uint64_t h = 0;
	for (int cpu = 0; cpu < kenv::ncpus(); cpu++) {
		const kmalloc_pcpu *pc = &zone->pcpu[cpu];
		h = h * 0x100000001b3ULL + pc->slab_allocs.get();
		h = h * 0x100000001b3ULL + pc->frees.get();
		h = h * 0x100000001b3ULL + static_cast<uint64_t>(pc->mag_n.get());
	}
	h = h * 0x100000001b3ULL + zone->slabs.load(std::memory_order_relaxed);
	h = h * 0x100000001b3ULL + zone->nfull.load(std::memory_order_relaxed);
	h = h * 0x100000001b3ULL + zone->dips.load(std::memory_order_relaxed);
	return h | 1;	/* never 0: 0 means "never checked" to callers */
}

KENV_CHECKER struct kmalloc_zone_stats kmalloc_obj_counters(const struct kmalloc_zone *zone)
{
	kmalloc_zone_stats st{};
	st.name = zone->name;
	st.objsize = zone->objsize;
	st.objs_per_slab = zone->ncount;
	for (int cpu = 0; cpu < kenv::ncpus(); cpu++) {
		const kmalloc_pcpu *pc = &zone->pcpu[cpu];
		/* Read racily, the parts may disagree for a moment: never below zero. */
		uint64_t frees = pc->frees.get();
		uint64_t from_mag = frees - pc->mag_out.get() - uint64_t(pc->mag_n.get());
		if (int64_t(from_mag) < 0)
			from_mag = 0;
		st.percpu_allocs[cpu] = pc->slab_allocs.get() + from_mag;
		st.percpu_frees[cpu] = frees;
		st.allocs += st.percpu_allocs[cpu];
		st.frees += frees;
		st.remote_frees += pc->remote_frees.get();
	}
	st.inuse = st.allocs - st.frees;
	st.slabs = zone->slabs.load();
	st.boot_slabs = zone->boot_slabs.load();
	st.slabs_allocated = zone->slabs_allocated.load();
	st.slabs_freed = zone->slabs_freed.load();
	st.reserve_target = static_cast<uint64_t>(zone->reserve);
	st.reserve_level = zone->nfull.load();
	st.reserve_dips = zone->dips.load();
	st.refills_tried = zone->refills_tried.load();
	st.refills_failed = zone->refills_failed.load();
	st.failed_allocs = zone->failed_allocs.load();
	return st;
}

KENV_CHECKER struct kmalloc_zone_stats kmalloc_obj_stats(const struct kmalloc_zone *zone)
{
	kmalloc_zone_stats st = kmalloc_obj_counters(zone);
	/* The shared reserve slab changes under the zone lock (from a kernel thread, take
	 * it; a driver reading between runs needs none). */
	bool locked = kenv::curthread() != nullptr;
	if (locked)
		spin_lock(const_cast<kenv::spinlock *>(&zone->spin));
	st.reserve_objects = zone->rsv_slab != nullptr ? kmo_nfree(zone->rsv_slab) : 0;
	if (locked)
		spin_unlock(const_cast<kenv::spinlock *>(&zone->spin));
	return st;
}

/* Nonzero state bytes in [from, to): eight at a time, since most are zero. */
static KENV_CHECKER size_t kmo_count_marked(const uint8_t *st, size_t from, size_t to)
{
	size_t n = 0, k = from;
	for (; k < to && (k & 7); k++)
		n += st[k] != 0;
	for (; k + 8 <= to; k += 8) {
		uint64_t w;
		memcpy(&w, st + k, 8);
		if (w == 0)
			continue;
		for (int b = 0; b < 8; b++)
			n += st[k + b] != 0;
	}
	for (; k < to; k++)
		n += st[k] != 0;
	return n;
}

KENV_CHECKER std::vector<std::string> kmalloc_obj_check(const struct kmalloc_zone *zone,
							    bool deep)
{
	std::vector<std::string> problems;
	char buf[256];
	auto bad = [&](const char *fmt, auto... args) KENV_CHECKER {
		snprintf(buf, sizeof(buf), fmt, args...);
		problems.emplace_back(buf);
	};
	size_t allocated = 0, slabs = 0, boot = 0, nfull = 0;
	/* Scratch kept per thread: a fuzzer checks after nearly every operation. */
	static thread_local std::vector<const kmalloc_slab *> seen;	/* sorted: on two lists? */
	seen.clear();
	/* One buffer for the free-ring walk of every slab (no allocation per slab). */
	static thread_local std::vector<char> on_ring;
	/* Objects in magazines are free but not on their slab's ring. */
	static thread_local std::vector<const kmalloc_slab *> in_mag;	/* per object, sorted */
	in_mag.clear();
	size_t mag_total = 0;	/* shallow: magazine objects of every CPU */
	for (int cpu = 0; cpu < kenv::MAXCPU; cpu++) {
		const kmalloc_pcpu *pc = &zone->pcpu[cpu];
		if (pc->mag_n < 0 || pc->mag_n > zone->mag_cap) {
			bad("cpu%d: magazine count %d", cpu, pc->mag_n.get());
			continue;
		}
		for (int k = 0; k < pc->mag_n; k++) {
			const kmalloc_slab *ms = kmo_slab_of(pc->mag[k]);
			if (!kmo_registered(ms) || ms->zone != zone)
				bad("cpu%d: magazine holds foreign %p", cpu, pc->mag[k]);
			else if (deep)
				in_mag.push_back(ms);
			else
				mag_total++;
		}
	}
	/* Deep: each slab's magazine objects (sorted, for a lookup per slab). Shallow: only
	 * their number, taken off the total below (a sort per check is most of its cost). */
	std::sort(in_mag.begin(), in_mag.end());
	/* Returns whether s is a slab at all (a list walk stops at one that is not). */
	auto visit = [&](const kmalloc_slab *s, int where) KENV_CHECKER -> bool {
		if (!kmo_registered(s)) {
			bad("list %d holds %p, no slab", where, static_cast<const void *>(s));
			return false;
		}
		slabs++;
		seen.push_back(s);
		if (s->magic != KMSLAB_MAGIC || s->zone != zone) {
			bad("slab %p: bad magic or zone", static_cast<const void *>(s));
			return true;
		}
		if (s->flags & KMSLAB_BOOT)
			boot++;
		if (s->where != where)
			bad("slab %p: on list %d but marked %d", static_cast<const void *>(s), where,
			    s->where);
		size_t a = s->aindex, x = s->xindex.load(), f = s->findex.load();
		if (!(a <= x && x <= f) || x - a > s->ncount)
			bad("slab %p: indices a=%zu x=%zu f=%zu n=%zu", static_cast<const void *>(s),
			    a, x, f, s->ncount);
		auto range = std::equal_range(in_mag.begin(), in_mag.end(), s);
		size_t mags = static_cast<size_t>(range.second - range.first);
		size_t used = s->ncount - (x - a) - mags;
		if (x - a + mags > s->ncount)
			used = 0;
		allocated += used;
		if (s->base + s->ncount * s->objsize > reinterpret_cast<uintptr_t>(s) + KMALLOC_SLAB_SIZE)
			bad("slab %p: objects run past the slab", static_cast<const void *>(s));
		if (where == KMS_FULL && x - a != s->ncount)
			bad("slab %p: on the full list with %zu live objects",
			    static_cast<const void *>(s), s->ncount - (x - a));
		if (!deep)
			return true;
		/* Deep: the state map and the free ring, object by object. */
		const auto *st = reinterpret_cast<const uint8_t *>(s->state);
		size_t marked = kmo_count_marked(st, 0, s->ncount);
		if (marked != used)
			bad("slab %p: %zu objects marked allocated, indices say %zu",
			    static_cast<const void *>(s), marked, used);
		/* The first pass over a fresh slab is implicit: ring slot k < ncount is object
		 * k, never handed out yet, so it must be unallocated (no lookup needed). */
		size_t implicit_end = x < s->ncount ? x : s->ncount;
		if (a < implicit_end && kmo_count_marked(st, a, implicit_end) != 0) {
			for (size_t k = a; k < implicit_end; k++) {
				if (st[k]) {
					bad("slab %p: free ring holds allocated %p",
					    static_cast<const void *>(s),
					    reinterpret_cast<void *>(s->base + k * s->objsize));
					break;
				}
			}
		}
		size_t explicit_from = a > implicit_end ? a : implicit_end;
		if (explicit_from >= x)
			return true;	/* a slab still on its first pass: nothing more */
		on_ring.assign(s->ncount, 0);
		/* Raw pointers: a checker (no ASan) cannot inline ASan-built library code. */
		char *ring = on_ring.data();
		for (size_t k = a; k < implicit_end; k++)
			ring[k] = 1;
		/* Past the first pass (explicit_from >= ncount): every entry is a ring slot. */
		for (size_t k = explicit_from; k < x && k - a <= s->ncount; k++) {
			const void *o = s->fobjs[k & s->rmask].load(std::memory_order_relaxed);
			auto p = reinterpret_cast<uintptr_t>(o);
			uintptr_t off = p - s->base;
			size_t idx = kmo_index(s, off);
			if (p < s->base || off >= KMALLOC_SLAB_SIZE || idx * s->objsize != off ||
			    idx >= s->ncount)
				bad("slab %p: free ring holds foreign %p", static_cast<const void *>(s), o);
			else if (st[idx])
				bad("slab %p: free ring holds allocated %p", static_cast<const void *>(s), o);
			else if (ring[idx]++)
				bad("slab %p: %p twice on the free ring", static_cast<const void *>(s), o);
		}
		return true;
	};
	/* A list walk stops at anything that is not a slab, and after more entries than
	 * the zone has slabs: a corrupted list (a cycle, say) is reported, not followed
	 * for ever. */
	size_t longest = static_cast<size_t>(zone->slabs.load()) + 1;
	auto walk = [&](const kmalloc_slab *head, int where, const char *what,
			int cpu) KENV_CHECKER {
		size_t n = 0;
		for (const kmalloc_slab *s = head; s; s = s->next) {
			if (++n > longest) {
				bad("cpu%d: %s list does not end (more than %zu slabs)", cpu, what,
				    longest - 1);
				return;
			}
			if (!visit(s, where))
				return;
			if (where == KMS_FULL)
				nfull++;
		}
	};
	for (int cpu = 0; cpu < kenv::MAXCPU; cpu++) {
		const kmalloc_pcpu *pc = &zone->pcpu[cpu];
		if (pc->active)
			visit(pc->active, KMS_ACTIVE);
		if (pc->alternate)
			visit(pc->alternate, KMS_ALTERNATE);
		walk(pc->partial, KMS_PARTIAL, "partial", cpu);
		walk(pc->empty, KMS_EMPTY, "empty", cpu);
	}
	walk(zone->full, KMS_FULL, "full", -1);
	if (zone->rsv_slab)
		visit(zone->rsv_slab, KMS_RESERVE);
	walk(zone->rsv_spent, KMS_SPENT, "spent", -1);
	std::sort(seen.begin(), seen.end());
	for (size_t i = 1; i < seen.size(); i++)
		if (seen[i] == seen[i - 1])
			bad("slab %p is on two lists", static_cast<const void *>(seen[i]));
	kmalloc_zone_stats st = kmalloc_obj_counters(zone);
	if (nfull != zone->nfull)
		bad("full list has %zu slabs, counter says %zu", nfull, zone->nfull.load());
	if (slabs != st.slabs)
		bad("%zu slabs reachable, counter says %llu", slabs,
		    static_cast<unsigned long long>(st.slabs));
	if (boot != st.boot_slabs)
		bad("%zu boot slabs reachable, %llu registered", boot,
		    static_cast<unsigned long long>(st.boot_slabs));
	if (allocated < mag_total)
		bad("magazines hold %zu objects, slabs lend out %zu", mag_total,
		    allocated);
	else
		allocated -= mag_total;
	if (allocated != st.inuse)
		bad("%zu objects allocated in slabs, counters say %llu",
		    allocated, static_cast<unsigned long long>(st.inuse));
	return problems;
}
