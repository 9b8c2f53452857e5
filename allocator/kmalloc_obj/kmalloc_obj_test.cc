// kmalloc_obj_test.cc - kmalloc_obj's own semantics on the deterministic runtime:
// allocation and free, the misuse it must detect, boot slabs (A), the spare-slab
// reserve (B), interrupts and cross-CPU frees leaving the zone consistent.
#include "allocator/kmalloc_obj/kmalloc_obj.h"

#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/page_source.h"
#include "allocator/kenv/runtime.h"
#include "allocator/kenv/testing.h"
#include "gtest/gtest.h"

namespace {

using kenv::Outcome;
using kenv::Runtime;
using kenv::RuntimeConfig;

class KmallocObjTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kenv::boot_reset(kenv::boot_phase::RUNNING);
    kenv::PageSourceConfig pc;
    pc.budget_pages = 64 * KMALLOC_SLAB_PAGES;
    pc.free_reserved = 2 * KMALLOC_SLAB_PAGES;
    pc.interrupt_free_min = KMALLOC_SLAB_PAGES;
    kenv::page_source_init(pc);
    kmalloc_obj_reset();
  }
  void TearDown() override {
    EXPECT_TRUE(kenv::page_source_teardown().empty());
    kmalloc_obj_reset();
  }

  Outcome Run(int ncpus, uint64_t seed, std::vector<std::function<void()>> per_cpu) {
    RuntimeConfig c;
    c.ncpus = ncpus;
    c.seed = seed;
    Runtime rt(c);
    for (size_t i = 0; i < per_cpu.size(); i++)
      rt.spawn(static_cast<int>(i % ncpus), "cpu" + std::to_string(i), per_cpu[i]);
    return rt.run();
  }
  Outcome Run1(std::function<void()> fn) { return Run(1, 1, {std::move(fn)}); }

  // (B)'s test bench: a zone with x spare slabs filled, then a page source with no
  // page left for anyone.
  static kmalloc_zone* SparesThenNoPages(size_t objsize, int x) {
    kmalloc_zone* z = kmalloc_create_obj("SWAPMETA", objsize, 0);
    kmalloc_obj_set_reserve(z, x);
    EXPECT_EQ(kmalloc_obj_reserve_refill(z), x);
    EXPECT_EQ(kmalloc_obj_stats(z).reserve_level, static_cast<uint64_t>(x));
    kenv::page_source_pressure(1u << 30);
    return z;
  }
};

// Allocations from the magazine are counted by derivation (frees - flushed - level):
// the statistics must stay exact through fills, flushes (four at a time for 4 KiB
// objects, whose magazine holds four) and reuse.
TEST_F(KmallocObjTest, StatisticsExactThroughMagazineFillsAndFlushes) {
  Outcome o = Run1([] {
    kmalloc_zone* z = kmalloc_create_obj("BIG", 4096, 0);
    std::vector<void*> objs;
    uint64_t allocs = 0, frees = 0;
    for (int round = 0; round < 5; round++) {
      for (int i = 0; i < 40; i++, allocs++) objs.push_back(kmalloc_obj(4096, z, M_WAITOK));
      for (int i = 0; i < 25; i++, frees++) {
        kfree_obj(objs.back(), z);
        objs.pop_back();
      }
      kmalloc_zone_stats st = kmalloc_obj_stats(z);
      EXPECT_EQ(st.allocs, allocs);
      EXPECT_EQ(st.frees, frees);
      EXPECT_EQ(st.inuse, objs.size());
      EXPECT_EQ(st.percpu_allocs[0], allocs);
      EXPECT_TRUE(kmalloc_obj_check(z).empty());
    }
    for (void* p : objs) kfree_obj(p, z);
    kmalloc_obj_drain_cpu(z);
    kmalloc_zone_stats st = kmalloc_obj_stats(z);
    EXPECT_EQ(st.inuse, 0u);
    EXPECT_EQ(st.allocs, st.frees);
    EXPECT_TRUE(kmalloc_obj_check(z).empty());
    kmalloc_destroy_obj(z);
  });
  EXPECT_TRUE(o.ok()) << o.title;
}

TEST_F(KmallocObjTest, AllocFreeDistinctAlignedZeroed) {
  Outcome o = Run1([] {
    kmalloc_zone* z = kmalloc_create_obj("TEST", 100, 0);
    std::vector<void*> objs;
    std::set<uintptr_t> seen;
    for (int i = 0; i < 5000; i++) {
      void* p = kmalloc_obj(100, z, M_WAITOK | M_ZERO);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % KMALLOC_OBJ_ALIGN, 0u);
      EXPECT_TRUE(seen.insert(reinterpret_cast<uintptr_t>(p)).second);
      const auto* b = static_cast<const unsigned char*>(p);
      for (int k = 0; k < 100; k++) ASSERT_EQ(b[k], 0);
      memset(p, 0x5a, 100);
      EXPECT_EQ(kmalloc_obj_owner(p), z);
      objs.push_back(p);
    }
    EXPECT_TRUE(kmalloc_obj_check(z).empty());
    kmalloc_zone_stats st = kmalloc_obj_stats(z);
    EXPECT_EQ(st.inuse, 5000u);
    EXPECT_EQ(st.objsize, 128u);
    for (void* p : objs) kfree_obj(p, z);
    EXPECT_TRUE(kmalloc_obj_check(z).empty());
    EXPECT_EQ(kmalloc_obj_stats(z).inuse, 0u);
    kmalloc_obj_drain_cpu(z);
    kmalloc_obj_poll(z);
    kmalloc_destroy_obj(z);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

// A slab holds as many objects as fit beside its header (slab descriptor, free ring of
// a power of two entries, a state byte per object): every object of a full slab lies
// inside it, and one more would not fit.
TEST_F(KmallocObjTest, SlabHoldsTheMostObjectsThatFit) {
  Outcome o = Run1([] {
    auto ring = [](size_t n) {
      size_t r = 1;
      while (r < n) r <<= 1;
      return r;
    };
    for (size_t size : {16, 48, 64, 100, 128, 1000, 4096, 16384, 32768}) {
      kmalloc_zone* z = kmalloc_create_obj("CAP", size, 0);
      kmalloc_zone_stats st = kmalloc_obj_stats(z);
      size_t n = st.objs_per_slab, os = st.objsize;
      EXPECT_LE(n * os + n + ring(n) * sizeof(void*), KMALLOC_SLAB_SIZE) << size;
      // The descriptor and alignment take under 512 bytes.
      EXPECT_GT((n + 1) * os + (n + 1) + ring(n + 1) * sizeof(void*) + 512, KMALLOC_SLAB_SIZE)
          << size;
      std::vector<void*> objs;
      for (size_t i = 0; i < n; i++) objs.push_back(kmalloc_obj(os, z, M_WAITOK));
      EXPECT_EQ(kmalloc_obj_stats(z).slabs, 1u) << size;
      uintptr_t slab = reinterpret_cast<uintptr_t>(objs[0]) & ~KMALLOC_SLAB_MASK;
      for (void* p : objs) {
        EXPECT_GE(reinterpret_cast<uintptr_t>(p), slab);
        EXPECT_LE(reinterpret_cast<uintptr_t>(p) + os, slab + KMALLOC_SLAB_SIZE);
      }
      for (void* p : objs) kfree_obj(p, z);
      kmalloc_obj_drain_cpu(z);
      kmalloc_destroy_obj(z);
    }
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

struct Misuse {
  const char* name;
  void (*fn)(kmalloc_zone* a, kmalloc_zone* b);
  const char* title;
};

TEST_F(KmallocObjTest, MisuseIsDetected) {
  static char foreign[256];
  const Misuse cases[] = {
      {"double free",
       [](kmalloc_zone* a, kmalloc_zone*) {
         void* p = kmalloc_obj(64, a, M_WAITOK);
         kfree_obj(p, a);
         kfree_obj(p, a);
       },
       "slabfuzz: panic: kfree_obj: A: double free of ADDR"},
      {"wrong zone",
       [](kmalloc_zone* a, kmalloc_zone* b) { kfree_obj(kmalloc_obj(64, a, M_WAITOK), b); },
       "slabfuzz: panic: kfree_obj: ADDR freed to zone B but belongs to zone A"},
      {"interior pointer",
       [](kmalloc_zone* a, kmalloc_zone*) {
         kfree_obj(static_cast<char*>(kmalloc_obj(64, a, M_WAITOK)) + 8, a);
       },
       "slabfuzz: panic: kfree_obj: A: interior pointer ADDR"},
      {"foreign pointer",
       [](kmalloc_zone* a, kmalloc_zone*) { kfree_obj(foreign + 64, a); },
       "slabfuzz: panic: kfree_obj: A: ADDR is not in any slab"},
      {"destroy with live objects",
       [](kmalloc_zone* a, kmalloc_zone*) {
         kmalloc_obj(64, a, M_WAITOK);
         kmalloc_destroy_obj(a);
       },
       "slabfuzz: panic: kmalloc_destroy_obj: zone A has N live objects"},
      {"use after free",
       [](kmalloc_zone* a, kmalloc_zone*) {
         auto* p = static_cast<char*>(kmalloc_obj(64, a, M_WAITOK));
         kfree_obj(p, a);
#ifndef SLABFUZZ_HAVE_ASAN
         p[3] = 1;  // under ASan this write itself is the report (poisoned object)
#endif
         for (int i = 0; i < 100000; i++) kmalloc_obj(64, a, M_WAITOK);
       },
       "slabfuzz: use-after-free: zone A: free object ADDR was written at offset N"},
  };
  for (const Misuse& m : cases) {
#ifdef SLABFUZZ_HAVE_ASAN
    if (std::string(m.name) == "use after free") continue;
#endif
    SCOPED_TRACE(m.name);
    Outcome o = Run1([&] {
      kmalloc_zone* a = kmalloc_create_obj("A", 64, 0);
      kmalloc_zone* b = kmalloc_create_obj("B", 64, 0);
      m.fn(a, b);
    });
    EXPECT_EQ(o.kind, Outcome::kPanic);
    EXPECT_EQ(o.title, m.title);
    kenv::page_source_teardown();
    kmalloc_obj_reset();
  }
}

TEST_F(KmallocObjTest, LimitGivesNullWithNullOkAndPanicsWithout) {
  Outcome o = Run1([] {
    kmalloc_zone* z = kmalloc_create_obj("LIMITED", 1024, KMALLOC_SLAB_SIZE);
    size_t n = kmalloc_obj_stats(z).objs_per_slab;
    std::vector<void*> objs;
    for (size_t i = 0; i < n; i++) objs.push_back(kmalloc_obj(1024, z, M_WAITOK));
    EXPECT_EQ(kmalloc_obj(1024, z, M_WAITOK | M_NULLOK), nullptr);
    for (void* p : objs) kfree_obj(p, z);
    kmalloc_destroy_obj(z);
  });
  ASSERT_TRUE(o.ok()) << o.title;
  o = Run1([] {
    kmalloc_zone* z = kmalloc_create_obj("LIMITED", 1024, KMALLOC_SLAB_SIZE);
    for (;;) kmalloc_obj(1024, z, M_WAITOK);
  });
  EXPECT_EQ(o.title, "slabfuzz: panic: kmalloc_obj: LIMITED: out of memory (flags ADDR)");
  kenv::page_source_teardown();
}

// (A): before the VM is up, a zone with boot slabs serves allocations; the poller and
// zone destruction never hand boot slabs to the page source.
TEST_F(KmallocObjTest, BootSlabsServeBeforeTheVmAndNeverGoBack) {
  void* boot = aligned_alloc(KMALLOC_SLAB_SIZE, 2 * KMALLOC_SLAB_SIZE);
  kenv::boot_reset(kenv::boot_phase::EARLY);
  Outcome o = Run1([&] {
    kmalloc_zone* z = kmalloc_create_obj("PV ENTRY", 64, 0);
    EXPECT_EQ(kmalloc_obj_boot_slabs(z, boot, 2 * KMALLOC_SLAB_SIZE), 2);
    size_t cap = kmalloc_obj_stats(z).objs_per_slab;
    std::vector<void*> objs;
    for (size_t i = 0; i < 2 * cap; i++) {
      void* p = kmalloc_obj(64, z, M_WAITOK);
      ASSERT_GE(reinterpret_cast<uintptr_t>(p), reinterpret_cast<uintptr_t>(boot));
      ASSERT_LT(reinterpret_cast<uintptr_t>(p),
                reinterpret_cast<uintptr_t>(boot) + 2 * KMALLOC_SLAB_SIZE);
      objs.push_back(p);
    }
    // Boot memory is exhausted and the VM is not up: a no-wait allocation fails.
    EXPECT_EQ(kmalloc_obj(64, z, M_NOWAIT), nullptr);
    kenv::boot_advance(kenv::boot_phase::VM_READY);
    void* fresh = kmalloc_obj(64, z, M_WAITOK);
    EXPECT_NE(fresh, nullptr);
    objs.push_back(fresh);
    for (void* p : objs) kfree_obj(p, z);
    kmalloc_obj_drain_cpu(z);
    kmalloc_obj_poll(z);
    kmalloc_zone_stats st = kmalloc_obj_stats(z);
    EXPECT_EQ(st.boot_slabs, 2u);
    EXPECT_EQ(st.slabs_allocated, 1u);
    EXPECT_TRUE(kmalloc_obj_check(z).empty());
    kmalloc_destroy_obj(z);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
  free(boot);  // the boot memory is the caller's again
}

// (B): ordinary allocations never take the last X spare slabs; an M_USE_RESERVE
// chain as deep as the reserve never blocks or fails with the page source empty.
TEST_F(KmallocObjTest, ReserveHoldsForSystemAllocationsOnly) {
  Outcome o = Run1([] {
    const int X = 3;
    kmalloc_zone* z = SparesThenNoPages(1024, X);
    size_t cap = kmalloc_obj_stats(z).objs_per_slab;
    EXPECT_EQ(kenv::vm_free_count(), 0u);
    // Ordinary allocations: nothing.
    EXPECT_EQ(kmalloc_obj(1024, z, M_RNOWAIT | M_NULLOK), nullptr);
    EXPECT_EQ(kmalloc_obj_stats(z).reserve_level, static_cast<uint64_t>(X));
    // System allocations: X slabs' worth, never blocking (M_NOWAIT checks it).
    std::vector<void*> objs;
    for (size_t i = 0; i < X * cap; i++) {
      void* p = kmalloc_obj(1024, z, M_NOWAIT);
      ASSERT_NE(p, nullptr) << "object " << i;
      objs.push_back(p);
    }
    EXPECT_EQ(kmalloc_obj(1024, z, M_NOWAIT), nullptr);
    kmalloc_zone_stats st = kmalloc_obj_stats(z);
    EXPECT_EQ(st.reserve_level, 0u);
    EXPECT_GE(st.reserve_dips, static_cast<uint64_t>(X));
    EXPECT_GE(st.refills_failed, 1u);
    // Memory comes back: the next slab taken refills the reserve.
    kenv::page_source_relief(1u << 30);
    for (void* p : objs) kfree_obj(p, z);
    kmalloc_obj_drain_cpu(z);
    kmalloc_obj_poll(z);
    EXPECT_GE(kmalloc_obj_stats(z).reserve_level, static_cast<uint64_t>(X));
    EXPECT_TRUE(kmalloc_obj_check(z).empty());
    kmalloc_destroy_obj(z);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

// The pageout daemon's shape: it lives on the reserve while it frees pages. A spare it
// dipped into while memory was gone is looked for again at its next reserve allocation
// once pages are back, not only at the next dip (which may never come: a slab of
// SWAPMETA outlasts many pageouts, and the daemon waits for pages when it runs out).
TEST_F(KmallocObjTest, MissingSpareIsRefilledByTheNextReserveAllocation) {
  Outcome o = Run1([] {
    kmalloc_zone* z = SparesThenNoPages(256, 1);
    std::vector<void*> objs;
    objs.push_back(kmalloc_obj(256, z, M_NOWAIT));  // dips; the refill finds no page
    ASSERT_NE(objs.back(), nullptr);
    kmalloc_zone_stats st = kmalloc_obj_stats(z);
    EXPECT_EQ(st.reserve_level, 0u);
    EXPECT_EQ(st.refills_failed, 1u);
    // Pages come back (the daemon paged some out), enough for a slab at system tier.
    kenv::page_source_relief(3 * KMALLOC_SLAB_PAGES);
    objs.push_back(kmalloc_obj(256, z, M_NOWAIT));  // from the reserve slab, no dip
    ASSERT_NE(objs.back(), nullptr);
    st = kmalloc_obj_stats(z);
    EXPECT_EQ(st.reserve_dips, 1u);
    EXPECT_EQ(st.reserve_level, 1u) << "the missing spare was not refilled";
    for (void* p : objs) kfree_obj(p, z);
    EXPECT_TRUE(kmalloc_obj_check(z).empty());
    kmalloc_destroy_obj(z);
    kenv::page_source_relief(1u << 30);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

// The reserve's last resort, as zalloc's ZONE_INTERRUPT zones had: with the spares used
// up and the refill failed (the pages free are short of the system tier's floor plus a
// slab), a reserve allocation takes a slab from the interrupt tier without blocking.
// Before, it failed (M_NOWAIT) or slept in vmwait (M_SYSWAIT): for the pageout daemon's
// SWAPMETA, a deadlock zalloc survived (ci/fuzz, the correct allocator, libFuzzer build).
TEST_F(KmallocObjTest, ReserveTakesTheInterruptTierWhenTheSparesAreGone) {
  Outcome o = Run1([] {
    kmalloc_zone* z = SparesThenNoPages(256, 1);
    size_t cap = kmalloc_obj_stats(z).objs_per_slab;
    std::vector<void*> objs;
    for (size_t i = 0; i < cap; i++) {
      objs.push_back(kmalloc_obj(256, z, M_NOWAIT));
      ASSERT_NE(objs.back(), nullptr) << "object " << i;
    }
    const size_t back = KMALLOC_SLAB_PAGES + KMALLOC_SLAB_PAGES / 2;
    kenv::page_source_relief(back);
    // Not enough for an ordinary slab, nor for a refill from the system tier.
    EXPECT_EQ(kmalloc_obj(256, z, M_RNOWAIT | M_NULLOK), nullptr);
    objs.push_back(kmalloc_obj(256, z, M_NOWAIT));
    ASSERT_NE(objs.back(), nullptr) << "no slab from the interrupt tier";
    kmalloc_zone_stats st = kmalloc_obj_stats(z);
    EXPECT_EQ(kenv::vm_free_count(), back - KMALLOC_SLAB_PAGES);
    EXPECT_EQ(st.reserve_level, 0u);
    EXPECT_GE(st.refills_failed, 2u);
    for (void* p : objs) kfree_obj(p, z);
    EXPECT_TRUE(kmalloc_obj_check(z).empty());
    kmalloc_destroy_obj(z);
    kenv::page_source_relief(1u << 30);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

// Objects freed into a drained reserve slab serve reserve allocations again: with the
// spares gone and no page to be had, a system allocation still succeeds for as many
// objects as came back.
TEST_F(KmallocObjTest, FreedReserveObjectsServeTheReserveAgain) {
  Outcome o = Run1([] {
    kmalloc_zone* z = SparesThenNoPages(1024, 2);
    size_t cap = kmalloc_obj_stats(z).objs_per_slab;
    std::vector<void*> objs;
    for (size_t i = 0; i < 2 * cap; i++) {
      objs.push_back(kmalloc_obj(1024, z, M_NOWAIT));
      ASSERT_NE(objs.back(), nullptr) << "object " << i;
    }
    // Ten objects of the first, drained, reserve slab come back to its ring.
    const size_t back = 10;
    for (size_t i = 0; i < back; i++) kfree_obj(objs[i], z);
    kmalloc_obj_drain_cpu(z);
    objs.erase(objs.begin(), objs.begin() + back);
    for (size_t i = 0; i < back; i++) {
      objs.push_back(kmalloc_obj(1024, z, M_NOWAIT));
      ASSERT_NE(objs.back(), nullptr) << "freed reserve object " << i << " not reused";
    }
    EXPECT_EQ(kmalloc_obj(1024, z, M_NOWAIT), nullptr);
    EXPECT_EQ(kmalloc_obj_stats(z).reserve_dips, 2u);
    kenv::page_source_relief(1u << 30);
    for (void* p : objs) kfree_obj(p, z);
    EXPECT_TRUE(kmalloc_obj_check(z).empty());
    kmalloc_destroy_obj(z);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

// An interrupt allocating on a CPU in the middle of that CPU's allocations leaves the
// zone consistent, over many schedules.
TEST_F(KmallocObjTest, InterruptAllocationKeepsTheZoneConsistent) {
  for (uint64_t seed = 0; seed < 40; seed++) {
    kmalloc_zone* z = nullptr;
    std::vector<void*> from_intr;
    RuntimeConfig c;
    c.ncpus = 2;
    c.seed = seed;
    Runtime rt(c);
    rt.spawn(0, "cpu0", [&] {
      z = kmalloc_create_obj("MAP ENTRY", 192, 0);
      kmalloc_obj_set_reserve(z, 1);
      std::vector<void*> mine;
      for (int i = 0; i < 1500; i++) {
        if (i % 300 == 0)
          kenv::current_runtime()->post_interrupt(0, [&] {
            for (int k = 0; k < 50; k++) {
              void* p = kmalloc_obj(192, z, M_INTNOWAIT);
              if (p) from_intr.push_back(p);
            }
          });
        mine.push_back(kmalloc_obj(192, z, M_WAITOK));
        if (i % 3 == 0) {
          kfree_obj(mine.back(), z);
          mine.pop_back();
        }
      }
      for (void* p : mine) kfree_obj(p, z);
    });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << o.title << o.report;
    EXPECT_EQ(from_intr.size(), 250u);
    Outcome t = rt.run_on_cpu0([&] {
      EXPECT_TRUE(kmalloc_obj_check(z).empty());
      for (void* p : from_intr) kfree_obj(p, z);
      kmalloc_destroy_obj(z);
    });
    ASSERT_TRUE(t.ok()) << t.title;
  }
}

// Frees from other CPUs race the owner's allocations on the same slabs.
TEST_F(KmallocObjTest, CrossCpuFreesKeepIndicesConsistent) {
  for (uint64_t seed = 0; seed < 30; seed++) {
    kmalloc_zone* z = nullptr;
    std::vector<void*> handoff;
    bool done = false;
    RuntimeConfig c;
    c.ncpus = 3;
    c.seed = seed;
    c.pct_depth = 5;
    Runtime rt(c);
    Outcome setup = rt.run_on_cpu0([&] { z = kmalloc_create_obj("XFREE", 64, 0); });
    ASSERT_TRUE(setup.ok());
    rt.spawn(0, "producer", [&] {
      for (int i = 0; i < 3000; i++) {
        handoff.push_back(kmalloc_obj(64, z, M_WAITOK));
        if (i % 16 == 0) kenv::preempt_point();
      }
      done = true;
    });
    for (int cpu = 1; cpu < 3; cpu++)
      rt.spawn(cpu, "consumer", [&] {
        kenv::consume_handoff(handoff, done, [&](void* p) { kfree_obj(p, z); });
      });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << o.title << o.report;
    Outcome t = rt.run_on_cpu0([&] {
      auto problems = kmalloc_obj_check(z);
      EXPECT_TRUE(problems.empty()) << problems[0];
      kmalloc_zone_stats st = kmalloc_obj_stats(z);
      EXPECT_EQ(st.inuse, 0u);
      EXPECT_GT(st.remote_frees, 0u);
      kmalloc_obj_drain_cpu(z);
      kmalloc_obj_poll(z);
      kmalloc_destroy_obj(z);
    });
    ASSERT_TRUE(t.ok()) << t.title;
  }
}

TEST_F(KmallocObjTest, PollerRetiresSurplusBeyondTheReserve) {
  Outcome o = Run1([] {
    kmalloc_zone* z = kmalloc_create_obj("SURPLUS", 4096, 0);
    kmalloc_obj_set_reserve(z, 1);
    std::vector<void*> objs;
    size_t cap = kmalloc_obj_stats(z).objs_per_slab;
    for (size_t i = 0; i < 6 * cap; i++) objs.push_back(kmalloc_obj(4096, z, M_WAITOK));
    for (void* p : objs) kfree_obj(p, z);
    kmalloc_obj_drain_cpu(z);
    int retired = kmalloc_obj_poll(z);
    EXPECT_GE(retired, 4);
    kmalloc_zone_stats st = kmalloc_obj_stats(z);
    EXPECT_EQ(st.reserve_level, 2u);  // the reserve and one spare
    EXPECT_TRUE(kmalloc_obj_check(z).empty());
    kmalloc_destroy_obj(z);
  });
  ASSERT_TRUE(o.ok()) << o.title;
}

}  // namespace
