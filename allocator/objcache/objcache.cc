/*
 * objcache.cc - the magazine-layer object cache (see objcache.h).
 *
 * Locking: a CPU's magazines are touched only by that CPU inside a critical section;
 * the depot (its magazine lists, the object budget, the waiter count) under
 * depot.spin. The back end, constructors and destructors run with neither held.
 * Object states live in a sharded side table, each shard under its own spinlock.
 */
#include "allocator/objcache/objcache.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <unordered_map>
#include <vector>

using kenv::crit_enter;
using kenv::crit_exit;
using kenv::mycpuid;
using kenv::panic;
using kenv::spin_lock;
using kenv::spin_unlock;

namespace {

struct magazine {
	int rounds;
	int capacity;
	magazine *next;
	void *objects[];
};

magazine *mag_alloc(int capacity)
{
	void *mem = kenv::host_obj_alloc(sizeof(magazine) + sizeof(void *) * capacity);
	auto *m = static_cast<magazine *>(mem);
	m->rounds = 0;
	m->capacity = capacity;
	m->next = nullptr;
	return m;
}

void mag_free(magazine *m)
{
	if (m != nullptr)
		kenv::host_obj_free(m, sizeof(magazine) + sizeof(void *) * m->capacity);
}

/* ---- object states ------------------------------------------------------------------ */

enum : uint8_t { OC_OUT = 1, OC_CACHED = 2 };

struct ostate {
	objcache *oc;
	uint8_t state;
};

constexpr int kShards = 64;
struct alignas(64) shard {
	kenv::spinlock spin;
	std::unordered_map<uintptr_t, ostate> map;
};
shard g_shards[kShards];

inline shard &shard_of(const void *obj)
{
	auto a = reinterpret_cast<uintptr_t>(obj);
	return g_shards[((a >> 4) * 0x9e3779b97f4a7c15ULL) >> 58];
}

}  // namespace

struct alignas(64) percpu_objcache {
	magazine *loaded_magazine;
	magazine *previous_magazine;
	kenv::wcounter<uint64_t> gets, puts, gets_null;	/* own CPU, in crit */
};

struct magazinedepot {
	kenv::spinlock spin;
	magazine *fullmagazines;
	magazine *emptymagazines;
	std::atomic<int64_t> unallocated_objects;
	std::atomic<int> waiting;
	std::atomic<uint64_t> put_gen;	/* advances on every put a waiter could use */
};

struct objcache {
	const char *name;
	objcache_ctor_fn *ctor;
	objcache_dtor_fn *dtor;
	void *privdata;
	objcache_alloc_fn *alloc;
	objcache_free_fn *free;
	void *allocator_args;
	int mag_capacity;
	int64_t cluster_limit;
	std::atomic<int> exhausted;
	std::atomic<uint64_t> backend_allocs, backend_frees, ctors, dtors, discarded;	/* any CPU */
	objcache_malloc_args margs;	/* for the kmalloc-backed kind */
	magazinedepot depot;
	objcache *next;
	percpu_objcache cache_percpu[kenv::MAXCPU];
};

namespace {

/* A host lock (kenv::host_lock_guard: no switch while it is held), taken in the
 * functions below (host bookkeeping, not instrumented: KENV_NO_COVERAGE) and reset. */
std::mutex g_caches_mtx;
objcache *g_caches = nullptr;

KENV_NO_COVERAGE void caches_link(objcache *oc)
{
	kenv::uncounted bookkeeping;
	kenv::host_lock_guard g(g_caches_mtx);
	oc->next = g_caches;
	g_caches = oc;
}

KENV_NO_COVERAGE void caches_unlink(objcache *oc)
{
	kenv::uncounted bookkeeping;
	kenv::host_lock_guard g(g_caches_mtx);
	for (objcache **pp = &g_caches; *pp != nullptr; pp = &(*pp)->next)
		if (*pp == oc) {
			*pp = oc->next;
			break;
		}
}

KENV_NO_COVERAGE std::vector<objcache *> caches_all(void)
{
	kenv::uncounted bookkeeping;
	std::vector<objcache *> all;
	kenv::host_lock_guard g(g_caches_mtx);
	for (objcache *oc = g_caches; oc != nullptr; oc = oc->next)
		all.push_back(oc);
	return all;
}

void state_set(objcache *oc, void *obj, uint8_t want_old, uint8_t to, const char *fn)
{
	shard &s = shard_of(obj);
	spin_lock(&s.spin);
	objcache *owner;
	uint8_t old;
	{
		kenv::uncounted bookkeeping;  /* the map is host memory: see kenv::uncounted */
		auto it = s.map.find(reinterpret_cast<uintptr_t>(obj));
		if (it == s.map.end()) {
			spin_unlock(&s.spin);
			panic("%s: %s: %p is not an object of any objcache", fn, oc->name, obj);
		}
		owner = it->second.oc;
		old = it->second.state;
		if (owner == oc && old == want_old)
			it->second.state = to;
	}
	spin_unlock(&s.spin);
	if (owner != oc)
		panic("%s: %p freed to zone %s but belongs to zone %s", fn, obj, oc->name,
		      owner->name);
	if (old != want_old) {
		if (to == OC_CACHED)
			panic("%s: %s: double free of %p (put twice)", fn, oc->name, obj);
		panic("%s: %s: magazine holds %p, which is not cached", fn, oc->name, obj);
	}
}

void state_add(objcache *oc, void *obj)
{
	shard &s = shard_of(obj);
	spin_lock(&s.spin);
	bool fresh;
	{
		kenv::uncounted bookkeeping;
		fresh = s.map.emplace(reinterpret_cast<uintptr_t>(obj), ostate{oc, OC_OUT}).second;
	}
	spin_unlock(&s.spin);
	if (!fresh)
		panic("objcache_get: %s: back end returned %p, which a cache already holds",
		      oc->name, obj);
}

void state_remove(void *obj)
{
	shard &s = shard_of(obj);
	spin_lock(&s.spin);
	{
		kenv::uncounted bookkeeping;
		s.map.erase(reinterpret_cast<uintptr_t>(obj));
	}
	spin_unlock(&s.spin);
}

/* Destruct an object (marked out or cached) and give it back to the back end. */
void backend_free(objcache *oc, void *obj)
{
	state_remove(obj);
	if (oc->dtor != nullptr) {
		oc->dtor(obj, oc->privdata);
		oc->dtors.fetch_add(1, std::memory_order_relaxed);
	}
	oc->free(obj, oc->allocator_args);
	oc->backend_frees.fetch_add(1, std::memory_order_relaxed);
}

void depot_return_budget(objcache *oc, int64_t n)
{
	magazinedepot &d = oc->depot;
	spin_lock(&d.spin);
	d.unallocated_objects += n;
	bool wake = d.waiting > 0;
	d.put_gen.fetch_add(1, std::memory_order_relaxed);
	spin_unlock(&d.spin);
	if (wake)
		kenv::wakeup(&oc->depot);
}

}  // namespace

void *objcache_malloc_alloc(void *allocator_args, int ocflags)
{
	auto *a = static_cast<objcache_malloc_args *>(allocator_args);
	return kmalloc(a->objsize, a->mtype, ocflags);
}

void objcache_malloc_free(void *obj, void *allocator_args)
{
	kfree(obj, static_cast<objcache_malloc_args *>(allocator_args)->mtype);
}

struct objcache *objcache_create(const char *name, int cluster_limit, int mag_capacity,
				 objcache_ctor_fn *ctor, objcache_dtor_fn *dtor,
				 void *privdata, objcache_alloc_fn *alloc,
				 objcache_free_fn *free, void *allocator_args)
{
	auto *oc = kenv::host_new<objcache>();
	oc->name = name;
	oc->ctor = ctor;
	oc->dtor = dtor;
	oc->privdata = privdata;
	oc->alloc = alloc;
	oc->free = free;
	oc->allocator_args = allocator_args;
	if (mag_capacity <= 0)
		mag_capacity = 64;
	oc->mag_capacity = mag_capacity < 4 ? 4 : mag_capacity > 1024 ? 1024 : mag_capacity;
	oc->cluster_limit = cluster_limit > 0 ? cluster_limit : OBJCACHE_UNLIMITED;
	kenv::spin_init(&oc->depot.spin, "objcache_depot");
	oc->depot.fullmagazines = nullptr;
	oc->depot.emptymagazines = nullptr;
	oc->depot.unallocated_objects.store(oc->cluster_limit);
	oc->depot.waiting.store(0);
	for (int i = 0; i < OBJCACHE_DEPOT_MAGS; i++) {
		magazine *m = mag_alloc(oc->mag_capacity);
		m->next = oc->depot.emptymagazines;
		oc->depot.emptymagazines = m;
	}
	for (percpu_objcache &pc : oc->cache_percpu) {
		pc.loaded_magazine = mag_alloc(oc->mag_capacity);
		pc.previous_magazine = mag_alloc(oc->mag_capacity);
	}
	caches_link(oc);
	return oc;
}

struct objcache *objcache_create_mbacked(struct malloc_type *mtype, size_t objsize,
					 int cluster_limit, int mag_capacity,
					 objcache_ctor_fn *ctor, objcache_dtor_fn *dtor,
					 void *privdata)
{
	kmalloc_init();
	objcache *oc = objcache_create(mtype->ks_shortdesc, cluster_limit, mag_capacity, ctor,
				       dtor, privdata, objcache_malloc_alloc,
				       objcache_malloc_free, nullptr);
	oc->margs = {objsize, mtype};
	oc->allocator_args = &oc->margs;
	return oc;
}

void *objcache_get(struct objcache *oc, int ocflags)
{
	kenv::thread *td = kenv::curthread();
	magazinedepot &d = oc->depot;
	void *obj = nullptr;
	if (ocflags & M_RNOWAIT)
		td->td_nosleep++;
	crit_enter();
	for (;;) {
		percpu_objcache *cpucache = &oc->cache_percpu[mycpuid()];
		magazine *loaded = cpucache->loaded_magazine;
		if (loaded->rounds > 0) {
			obj = loaded->objects[--loaded->rounds];
			cpucache->gets.inc();
			crit_exit();
			state_set(oc, obj, OC_CACHED, OC_OUT, "objcache_get");
			break;
		}
		if (cpucache->previous_magazine->rounds > 0) {
			cpucache->loaded_magazine = cpucache->previous_magazine;
			cpucache->previous_magazine = loaded;
			continue;
		}
		/* Both empty: trade the previous (empty) one for a full one at the depot. */
		spin_lock(&d.spin);
		if (magazine *full = d.fullmagazines) {
			d.fullmagazines = full->next;
			magazine *empty = cpucache->previous_magazine;
			empty->next = d.emptymagazines;
			d.emptymagazines = empty;
			cpucache->previous_magazine = loaded;
			cpucache->loaded_magazine = full;
			spin_unlock(&d.spin);
			continue;
		}
		/* No cached object anywhere we may look: the back end, within the budget. */
		if (d.unallocated_objects > 0) {
			--d.unallocated_objects;
			spin_unlock(&d.spin);
			crit_exit();
			obj = oc->alloc(oc->allocator_args, ocflags);
			if (obj != nullptr && oc->ctor != nullptr) {
				oc->ctors.fetch_add(1, std::memory_order_relaxed);
				if (!oc->ctor(obj, oc->privdata, ocflags)) {
					oc->free(obj, oc->allocator_args);
					obj = nullptr;
				}
			}
			if (obj == nullptr) {
				depot_return_budget(oc, 1);
				break;
			}
			oc->backend_allocs.fetch_add(1, std::memory_order_relaxed);
			state_add(oc, obj);
			crit_enter();
			oc->cache_percpu[mycpuid()].gets.inc();
			crit_exit();
			break;
		}
		/* Exhausted: reported once; then sleep for a put, or fail. */
		oc->exhausted.store(1, std::memory_order_relaxed);
		if (!kenv::malloc_flags_canwait(ocflags)) {
			spin_unlock(&d.spin);
			crit_exit();
			break;
		}
		uint64_t gen = d.put_gen.load(std::memory_order_relaxed);
		++d.waiting;
		spin_unlock(&d.spin);
		crit_exit();
		/* Nothing can run between the check and the sleep but wakeup()s (det); the
		 * threaded runtime sleeps at most 10 ticks. */
		if (d.put_gen.load(std::memory_order_relaxed) == gen)
			kenv::tsleep(&oc->depot, "objcache_get", 10);
		spin_lock(&d.spin);
		--d.waiting;
		spin_unlock(&d.spin);
		crit_enter();
	}
	if (ocflags & M_RNOWAIT)
		td->td_nosleep--;
	if (obj == nullptr) {
		crit_enter();
		oc->cache_percpu[mycpuid()].gets_null.inc();
		crit_exit();
		if (!(ocflags & M_NULLOK))
			panic("objcache_get: %s: exhausted (flags 0x%x)", oc->name, ocflags);
	}
	return obj;
}

void objcache_put(struct objcache *oc, void *obj)
{
	magazinedepot &d = oc->depot;
	state_set(oc, obj, OC_OUT, OC_CACHED, "objcache_put");
	kenv::preempt_point();
	crit_enter();
	for (;;) {
		percpu_objcache *cpucache = &oc->cache_percpu[mycpuid()];
		magazine *loaded = cpucache->loaded_magazine;
		if (loaded->rounds < loaded->capacity) {
			loaded->objects[loaded->rounds++] = obj;
			cpucache->puts.inc();
			crit_exit();
			if (d.waiting > 0) {
				spin_lock(&d.spin);
				d.put_gen.fetch_add(1, std::memory_order_relaxed);
				spin_unlock(&d.spin);
				kenv::wakeup(&oc->depot);
			}
			return;
		}
		if (cpucache->previous_magazine->rounds == 0) {
			cpucache->loaded_magazine = cpucache->previous_magazine;
			cpucache->previous_magazine = loaded;
			continue;
		}
		/* Both full: trade the loaded one for an empty one at the depot. */
		spin_lock(&d.spin);
		if (magazine *empty = d.emptymagazines) {
			d.emptymagazines = empty->next;
			loaded->next = d.fullmagazines;
			d.fullmagazines = loaded;
			cpucache->loaded_magazine = empty;
			d.put_gen.fetch_add(1, std::memory_order_relaxed);
			bool wake = d.waiting > 0;
			spin_unlock(&d.spin);
			if (wake)
				kenv::wakeup(&oc->depot);
			continue;
		}
		spin_unlock(&d.spin);
		cpucache->puts.inc();
		crit_exit();
		/* No room anywhere: the object goes back to the back end. */
		backend_free(oc, obj);
		depot_return_budget(oc, 1);
		return;
	}
}

void objcache_dtor(struct objcache *oc, void *obj)
{
	state_set(oc, obj, OC_OUT, OC_OUT, "objcache_dtor");
	oc->discarded.fetch_add(1, std::memory_order_relaxed);
	backend_free(oc, obj);
	depot_return_budget(oc, 1);
}

namespace {

/* Free a magazine's objects to the back end; returns how many. */
int mag_purge(objcache *oc, magazine *m)
{
	int n = m->rounds;
	for (int i = 0; i < n; i++) {
		state_set(oc, m->objects[i], OC_CACHED, OC_OUT, "objcache_reclaim");
		backend_free(oc, m->objects[i]);
	}
	m->rounds = 0;
	return n;
}

}  // namespace

void objcache_drain_cpu(struct objcache *oc)
{
	/* Swap this CPU's magazines for empty ones, then purge them outside crit. */
	magazine *fresh[2] = {mag_alloc(oc->mag_capacity), mag_alloc(oc->mag_capacity)};
	crit_enter();
	percpu_objcache *cpucache = &oc->cache_percpu[mycpuid()];
	magazine *old[2] = {cpucache->loaded_magazine, cpucache->previous_magazine};
	cpucache->loaded_magazine = fresh[0];
	cpucache->previous_magazine = fresh[1];
	crit_exit();
	int n = 0;
	for (magazine *m : old) {
		n += mag_purge(oc, m);
		mag_free(m);
	}
	if (n > 0)
		depot_return_budget(oc, n);
}

int objcache_reclaimlist(struct objcache *ocs[], int nlist)
{
	int total = 0;
	for (int i = 0; i < nlist; i++) {
		objcache *oc = ocs[i];
		magazinedepot &d = oc->depot;
		spin_lock(&d.spin);
		magazine *m = d.fullmagazines;
		if (m != nullptr)
			d.fullmagazines = m->next;
		spin_unlock(&d.spin);
		if (m == nullptr)
			continue;
		int n = mag_purge(oc, m);
		spin_lock(&d.spin);
		m->next = d.emptymagazines;
		d.emptymagazines = m;
		spin_unlock(&d.spin);
		depot_return_budget(oc, n);
		total += n;
	}
	return total;
}

int objcache_reclaim_all(void)
{
	std::vector<objcache *> all = caches_all();
	int total = 0;
	for (;;) {
		int n = objcache_reclaimlist(all.data(), static_cast<int>(all.size()));
		if (n == 0)
			break;
		total += n;
	}
	return total;
}

KENV_CHECKER objcache_stats objcache_stats_get(struct objcache *oc)
{
	objcache_stats s{};
	s.name = oc->name;
	s.mag_capacity = oc->mag_capacity;
	s.cluster_limit = oc->cluster_limit;
	s.unallocated = oc->depot.unallocated_objects.load(std::memory_order_relaxed);
	for (percpu_objcache &pc : oc->cache_percpu) {
		s.gets += pc.gets;
		s.puts += pc.puts;
		s.gets_null += pc.gets_null;
	}
	s.backend_allocs = oc->backend_allocs.load(std::memory_order_relaxed);
	s.backend_frees = oc->backend_frees.load(std::memory_order_relaxed);
	s.ctors = oc->ctors.load(std::memory_order_relaxed);
	s.dtors = oc->dtors.load(std::memory_order_relaxed);
	s.outstanding = static_cast<int64_t>(s.gets - s.puts -
					     oc->discarded.load(std::memory_order_relaxed));
	s.cached = static_cast<int64_t>(s.backend_allocs - s.backend_frees) - s.outstanding;
	s.exhausted_reported = oc->exhausted.load(std::memory_order_relaxed);
	return s;
}

KENV_CHECKER std::vector<std::string> objcache_check(struct objcache *oc, bool deep)
{
	std::vector<std::string> out;
	char buf[256];
	objcache_stats s = objcache_stats_get(oc);
	int64_t live = static_cast<int64_t>(s.backend_allocs - s.backend_frees);
	if (s.cluster_limit - s.unallocated != live) {
		snprintf(buf, sizeof(buf), "objcache %s: budget spent %lld, objects from the back end %lld",
			 oc->name, static_cast<long long>(s.cluster_limit - s.unallocated),
			 static_cast<long long>(live));
		out.push_back(buf);
	}
	int64_t in_mags = 0;
	auto walk = [&](magazine *m, const char *where, int want) {
		if (m->rounds < 0 || m->rounds > m->capacity ||
		    (want == 0 && m->rounds != 0) || (want == 1 && m->rounds != m->capacity)) {
			snprintf(buf, sizeof(buf), "objcache %s: %s magazine has %d of %d rounds",
				 oc->name, where, m->rounds, m->capacity);
			out.push_back(buf);
			return;
		}
		in_mags += m->rounds;
		if (!deep)
			return;
		for (int i = 0; i < m->rounds; i++) {
			shard &sh = shard_of(m->objects[i]);
			spin_lock(&sh.spin);
			bool ok;
			{
				kenv::uncounted bookkeeping;
				auto it = sh.map.find(reinterpret_cast<uintptr_t>(m->objects[i]));
				ok = it != sh.map.end() && it->second.oc == oc &&
				     it->second.state == OC_CACHED;
			}
			spin_unlock(&sh.spin);
			if (!ok) {
				snprintf(buf, sizeof(buf), "objcache %s: %s magazine holds %p, not cached here",
					 oc->name, where, m->objects[i]);
				out.push_back(buf);
				return;
			}
		}
	};
	for (percpu_objcache &pc : oc->cache_percpu) {
		walk(pc.loaded_magazine, "loaded", -1);
		walk(pc.previous_magazine, "previous", -1);
	}
	spin_lock(&oc->depot.spin);
	std::vector<magazine *> full, empty;
	for (magazine *m = oc->depot.fullmagazines; m; m = m->next)
		full.push_back(m);
	for (magazine *m = oc->depot.emptymagazines; m; m = m->next)
		empty.push_back(m);
	spin_unlock(&oc->depot.spin);
	for (magazine *m : full)
		walk(m, "depot full", 1);
	for (magazine *m : empty)
		walk(m, "depot empty", 0);
	if (in_mags != s.cached || s.outstanding < 0) {
		snprintf(buf, sizeof(buf),
			 "objcache %s: %lld objects in magazines, counters say %lld cached and %lld outstanding",
			 oc->name, static_cast<long long>(in_mags), static_cast<long long>(s.cached),
			 static_cast<long long>(s.outstanding));
		out.push_back(buf);
	}
	return out;
}

struct objcache *objcache_owner(const void *obj)
{
	shard &s = shard_of(obj);
	spin_lock(&s.spin);
	objcache *oc;
	{
		kenv::uncounted bookkeeping;
		auto it = s.map.find(reinterpret_cast<uintptr_t>(obj));
		oc = it == s.map.end() ? nullptr : it->second.oc;
	}
	spin_unlock(&s.spin);
	return oc;
}

namespace {

void objcache_free_struct(objcache *oc)
{
	for (percpu_objcache &pc : oc->cache_percpu) {
		mag_free(pc.loaded_magazine);
		mag_free(pc.previous_magazine);
	}
	for (magazine *l : {oc->depot.fullmagazines, oc->depot.emptymagazines})
		while (l != nullptr) {
			magazine *n = l->next;
			mag_free(l);
			l = n;
		}
	kenv::host_delete(oc);
}

}  // namespace

void objcache_destroy(struct objcache *oc)
{
	objcache_stats s = objcache_stats_get(oc);
	if (s.outstanding != 0)
		panic("objcache_destroy: %s has %lld objects outstanding", oc->name,
		      static_cast<long long>(s.outstanding));
	caches_unlink(oc);
	/* Quiescent: every CPU's magazines and the depot's go back to the back end. */
	for (percpu_objcache &pc : oc->cache_percpu) {
		mag_purge(oc, pc.loaded_magazine);
		mag_purge(oc, pc.previous_magazine);
	}
	for (magazine *m = oc->depot.fullmagazines; m; m = m->next)
		mag_purge(oc, m);
	objcache_free_struct(oc);
}

void objcache_reset(void)
{
	kenv::host_lock_guard g(g_caches_mtx);
	for (shard &s : g_shards)
		s.map.clear();
	while (g_caches != nullptr) {
		objcache *oc = g_caches;
		g_caches = oc->next;
		objcache_free_struct(oc);
	}
}
