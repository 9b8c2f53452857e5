// bench.cc - kmalloc_obj beside the kernel allocators it is to replace or sits beside
// (zalloc, objcache, general kmalloc) and glibc malloc, jemalloc, tcmalloc and
// mimalloc, in one binary and one run (Google Benchmark), with a closing table of
// ratios.
//
//   bazel run --config=perf //stress:bench [-- --benchmark_min_time=0.5]
//
// Every allocator is called through its own entry points, so that all of them live
// side by side: glibc (__libc_malloc/__libc_free), jemalloc (mallocx/dallocx),
// tcmalloc (tc_malloc/tc_free), mimalloc (mi_malloc/mi_free) and kmalloc_obj
// (kmalloc_obj/kfree_obj on a 64-byte zone), zalloc (zalloc/zfree on a 64-byte zone),
// objcache (objcache_get/put over kmalloc) and kmalloc (kmalloc/kfree of 64 bytes),
// the kernel ones from a kernel thread context of the threaded runtime whose virtual
// CPU is the benchmark thread's index.
// Benchmarks: a 64-byte alloc+free pair; a batch of 10,000 allocations then 10,000
// frees; producer/consumer (two threads, each frees what the other allocated); at 1
// and 2 threads where it applies. Ratios are peer time / kmalloc_obj time (above 1:
// kmalloc_obj is faster).
// The row "floor" is not an allocator: a per-CPU array of preallocated blocks behind
// crit_enter()/crit_exit(), with no checks, statistics or slabs, that is the least any
// per-CPU cache with a critical section costs on this machine (pair and batch only).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/malloc.h"
#include "allocator/kenv/page_source.h"
#include "allocator/kenv/runtime.h"
#include "allocator/kmalloc/kmalloc.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"
#include "allocator/objcache/objcache.h"
#include "allocator/zalloc/zalloc.h"

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* mallocx(size_t, int);
void dallocx(void*, int);
void* tc_malloc(size_t);
void tc_free(void*);
void* mi_malloc(size_t);
void mi_free(void*);
}

namespace {

constexpr size_t kSize = 64;
constexpr int kBatch = 10000;

kmalloc_zone* g_zone = nullptr;
vm_zone_t g_zzone = nullptr;
objcache* g_oc = nullptr;
malloc_type g_mtype;
malloc_type g_octype;
// One cache line (or more) per benchmark thread: td_critcount changes on every call.
struct alignas(64) KernelContext {
  kenv::thread td;
  alignas(64) kenv::globaldata gd;
};
KernelContext g_ctx[kenv::MAXCPU];

// Each benchmark thread runs as kernel thread `index` on virtual CPU `index`.
void enter_kernel(int index) {
  kenv::thread* td = &g_ctx[index].td;
  td->td_gd = &g_ctx[index].gd;
  td->td_name = "bench";
  kenv::curthread_tls = td;
}

struct GlibcA {
  static void* alloc() { return __libc_malloc(kSize); }
  static void release(void* p) { __libc_free(p); }
};
struct JemallocA {
  static void* alloc() { return mallocx(kSize, 0); }
  static void release(void* p) { dallocx(p, 0); }
};
struct TcmallocA {
  static void* alloc() { return tc_malloc(kSize); }
  static void release(void* p) { tc_free(p); }
};
struct MimallocA {
  static void* alloc() { return mi_malloc(kSize); }
  static void release(void* p) { mi_free(p); }
};
struct KmallocObjA {
  static void* alloc() { return kmalloc_obj(kSize, g_zone, M_WAITOK); }
  static void release(void* p) { kfree_obj(p, g_zone); }
};

struct ZallocA {
  static void* alloc() { return zalloc_flags(g_zzone, M_WAITOK); }
  static void release(void* p) { zfree(g_zzone, p); }
};
struct ObjcacheA {
  static void* alloc() { return objcache_get(g_oc, M_WAITOK); }
  static void release(void* p) { objcache_put(g_oc, p); }
};
// The floor: a counted per-CPU stack of blocks, the core of every per-CPU cache.
struct alignas(64) FloorCpu {
  int n;
  void* slot[kBatch];
};
FloorCpu g_floor[2];
struct FloorA {
  static void* alloc() {
    kenv::crit_enter();
    FloorCpu* fc = &g_floor[kenv::mycpuid()];
    void* p = fc->slot[--fc->n];
    kenv::crit_exit();
    return p;
  }
  static void release(void* p) {
    kenv::crit_enter();
    FloorCpu* fc = &g_floor[kenv::mycpuid()];
    fc->slot[fc->n++] = p;
    kenv::crit_exit();
  }
};
struct KmallocA {
  static void* alloc() { return kmalloc(kSize, &g_mtype, M_WAITOK); }
  static void release(void* p) { kfree(p, &g_mtype); }
};

template <class A>
void BM_Pair(benchmark::State& state) {
  enter_kernel(state.thread_index());
  for (auto _ : state) {
    void* p = A::alloc();
    benchmark::DoNotOptimize(p);
    A::release(p);
  }
  state.SetItemsProcessed(state.iterations());
}

template <class A>
void BM_Batch(benchmark::State& state) {
  enter_kernel(state.thread_index());
  std::vector<void*> v(kBatch);
  for (auto _ : state) {
    for (int i = 0; i < kBatch; i++) v[i] = A::alloc();
    benchmark::DoNotOptimize(v.data());
    for (int i = 0; i < kBatch; i++) A::release(v[i]);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// Two threads: each allocates objects and hands them to the other through a
// single-producer single-consumer ring, and frees what it is handed: every free is a
// cross-thread (remote) free. Handing over never waits (a full ring means the object is
// freed where it was allocated), because Google Benchmark ends every thread's loop at a
// barrier where the peer no longer drains.
constexpr int kHandoff = 256;
constexpr uint64_t kRing = 1u << 16;
struct Lane {
  std::atomic<uint64_t> head{0};  // consumer
  std::atomic<uint64_t> tail{0};  // producer
  void* items[kRing];
};
Lane g_lanes[2];

template <class A>
void BM_ProducerConsumer(benchmark::State& state) {
  const int me = state.thread_index(), peer = 1 - me;
  enter_kernel(me);
  Lane& in = g_lanes[me];
  Lane& out = g_lanes[peer];
  auto drain = [&] {
    uint64_t h = in.head.load(std::memory_order_relaxed);
    uint64_t t = in.tail.load(std::memory_order_acquire);
    for (; h < t; h++) A::release(in.items[h & (kRing - 1)]);
    in.head.store(h, std::memory_order_release);
  };
  for (auto _ : state) {
    for (int i = 0; i < kHandoff; i++) {
      void* p = A::alloc();
      uint64_t t = out.tail.load(std::memory_order_relaxed);
      if (t - out.head.load(std::memory_order_acquire) < kRing) {
        out.items[t & (kRing - 1)] = p;
        out.tail.store(t + 1, std::memory_order_release);
      } else {
        A::release(p);
      }
    }
    drain();
  }
  drain();  // past the loop's closing barrier nobody hands anything over
  state.SetItemsProcessed(state.iterations() * kHandoff);
}

#define SLABFUZZ_BENCH(A, name)                                                   \
  BENCHMARK_TEMPLATE(BM_Pair, A)->Name("pair/" name)->Threads(1)->Threads(2);     \
  BENCHMARK_TEMPLATE(BM_Batch, A)->Name("batch10000/" name)->Threads(1)->Threads(2); \
  BENCHMARK_TEMPLATE(BM_ProducerConsumer, A)->Name("prodcons/" name)->Threads(2)

SLABFUZZ_BENCH(KmallocObjA, "kmalloc_obj");
SLABFUZZ_BENCH(ZallocA, "zalloc");
SLABFUZZ_BENCH(ObjcacheA, "objcache");
SLABFUZZ_BENCH(KmallocA, "kmalloc");
SLABFUZZ_BENCH(GlibcA, "glibc");
SLABFUZZ_BENCH(JemallocA, "jemalloc");
SLABFUZZ_BENCH(TcmallocA, "tcmalloc");
SLABFUZZ_BENCH(MimallocA, "mimalloc");
BENCHMARK_TEMPLATE(BM_Pair, FloorA)->Name("pair/floor")->Threads(1)->Threads(2);
BENCHMARK_TEMPLATE(BM_Batch, FloorA)->Name("batch10000/floor")->Threads(1)->Threads(2);

// Collects every result, then prints ns per item and the ratio to kmalloc_obj.
class TableReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      std::string name = r.benchmark_name();  // e.g. pair/glibc/threads:2
      size_t a = name.find('/'), b = name.find('/', a + 1);
      std::string bench = name.substr(0, a);
      std::string alloc = name.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
      std::string threads = b == std::string::npos ? "" : name.substr(b + 1);
      auto it = r.counters.find("items_per_second");
      if (it == r.counters.end()) continue;
      double items_s = it->second.value;
      results_[bench + " " + threads][alloc] = items_s;
      order_.push_back(bench + " " + threads);
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    printf("\n%-28s %-12s %14s %14s %10s\n", "benchmark", "allocator", "ns/op (sum)",
           "Mops/s", "vs kmo");
    std::vector<std::string> seen;
    for (const std::string& key : order_) {
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
      seen.push_back(key);
      auto& row = results_[key];
      double kmo = row.count("kmalloc_obj") ? row["kmalloc_obj"] : 0;
      for (const char* alloc : {"kmalloc_obj", "zalloc", "objcache", "kmalloc", "glibc",
                                "jemalloc", "tcmalloc", "mimalloc", "floor"}) {
        if (!row.count(alloc)) continue;
        double items_s = row[alloc];
        printf("%-28s %-12s %14.2f %14.1f %10.2f\n", key.c_str(), alloc, 1e9 / items_s,
               items_s / 1e6, kmo > 0 ? kmo / items_s : 0.0);
      }
    }
    printf("(ns/op: aggregate over threads; vs kmo: peer time / kmalloc_obj time, "
           ">1 means kmalloc_obj is faster)\n");
  }

 private:
  std::map<std::string, std::map<std::string, double>> results_;
  std::vector<std::string> order_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  kenv::RuntimeConfig rc;
  rc.ncpus = 2;
  kenv::Runtime rt(rc);  // for ncpus() and the slow paths (threaded runtime)
  kenv::boot_reset(kenv::boot_phase::RUNNING);
  kenv::PageSourceConfig pc;
  pc.budget_pages = 60000;
  kenv::page_source_init(pc);
  for (int i = 0; i < kenv::MAXCPU; i++) g_ctx[i].gd.gd_cpuid = i;
  enter_kernel(0);
  g_zone = kmalloc_create_obj("BENCH64", kSize, 0);
  g_zzone = zinit("BENCH64Z", kSize, 0, 0);
  kmalloc_init();
  kmalloc_type_init(&g_mtype, "BENCH", 0);
  kmalloc_type_init(&g_octype, "BENCHOC", 0);
  for (FloorCpu& fc : g_floor) {
    for (void*& p : fc.slot) p = __libc_malloc(kSize);
    fc.n = kBatch;
  }
  g_oc = objcache_create_mbacked(&g_octype, kSize, 0, 0, nullptr, nullptr, nullptr);
  kenv::curthread_tls = nullptr;
#ifndef SLABFUZZ_PERF
  fprintf(stderr, "bench: built without --config=perf: checks and preemption points are on\n");
#endif
  // The kernel's poller, as it runs every tick: it gathers slabs that frees from other
  // CPUs emptied (without it, prodcons grows kmalloc_obj's memory without bound) and
  // the depot's surplus magazines.
  std::atomic<bool> stop{false};
  std::thread poller([&stop] {
    enter_kernel(kenv::MAXCPU - 1);
    while (!stop.load(std::memory_order_relaxed)) {
      kmalloc_obj_poll_all();
      objcache_reclaim_all();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    kenv::curthread_tls = nullptr;
  });
  TableReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  stop = true;
  poller.join();
  benchmark::Shutdown();
  return 0;
}
