// zalloc_test.cc - zalloc's own semantics on the deterministic runtime: per-CPU lists
// and batches, zbootinit before the VM (kept by a later zinitna), ZONE_INTERRUPT's cap
// and never-freed pages, ZONE_PANICFAIL, the misuse it detects, statistics, and
// cross-CPU frees and interrupts leaving the zone consistent.
#include "allocator/zalloc/zalloc.h"

#include <cstdlib>
#include <cstring>
#include <functional>
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

class ZallocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kenv::boot_reset(kenv::boot_phase::RUNNING);
    Pages(2048);
    zalloc_reset();
  }
  void TearDown() override {
    EXPECT_TRUE(kenv::page_source_teardown().empty());
    zalloc_reset();
    kenv::boot_reset(kenv::boot_phase::RUNNING);
  }
  void Pages(size_t budget) {
    kenv::PageSourceConfig pc;
    pc.budget_pages = budget;
    pc.free_reserved = 32;
    pc.interrupt_free_min = 8;
    pc.free_target = 48;
    kenv::page_source_init(pc);
  }
  Outcome Run1(std::function<void()> fn) {
    RuntimeConfig c;
    c.ncpus = 1;
    Runtime rt(c);
    rt.spawn(0, "cpu0", std::move(fn));
    return rt.run();
  }
};

TEST_F(ZallocTest, AllocFreeDistinctAlignedZeroed) {
  Outcome o = Run1([] {
    vm_zone_t z = zinit("TEST", 100, 0, 0);
    std::vector<void*> items;
    std::set<uintptr_t> seen;
    for (int i = 0; i < 3000; i++) {
      void* p = zalloc_flags(z, M_WAITOK | M_ZERO);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % ZONE_ROUNDING, 0u);
      EXPECT_TRUE(seen.insert(reinterpret_cast<uintptr_t>(p)).second);
      const auto* b = static_cast<const unsigned char*>(p);
      for (int k = 0; k < 100; k++) ASSERT_EQ(b[k], 0);
      memset(p, 0x5a, 100);
      EXPECT_EQ(zalloc_owner(static_cast<char*>(p) + 50), z);
      items.push_back(p);
    }
    EXPECT_TRUE(zcheck(z).empty());
    zalloc_stats s = zalloc_stats_get(z);
    EXPECT_EQ(s.size, 112u);
    EXPECT_EQ(s.used, 3000);
    EXPECT_EQ(s.requests, 3000u);
    EXPECT_EQ(s.free + s.used, s.total);
    for (void* p : items) zfree(z, p);
    EXPECT_TRUE(zcheck(z).empty());
    // Frees beyond two bursts went back to the global pool in batches.
    EXPECT_LT(z->zpcpu[0].zfreecnt, 2 * ZONE_BURST);
    zalloc_drain_cpu(z);
    EXPECT_EQ(z->zpcpu[0].zfreecnt, 0);
    EXPECT_EQ(zalloc_stats_get(z).used, 0);
    // Pages are never given back by zfree: the zone keeps what it grew to.
    EXPECT_EQ(zalloc_stats_get(z).total, s.total);
    zdestroy(z);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

// (A) as today's kernel does it: a static array before the VM, kept by zinitna().
TEST_F(ZallocTest, BootItemsServeBeforeTheVmAndAreKept) {
  kenv::boot_reset(kenv::boot_phase::EARLY);
  static struct vm_zone pvzone_store;
  alignas(64) static char boot_items[64 * 100];
  Outcome o = Run1([] {
    vm_zone_t z = &pvzone_store;
    zbootinit(z, "PV ENTRY", 64, boot_items, 100);
    std::vector<void*> got;
    for (int i = 0; i < 100; i++) {
      void* p = zalloc(z);
      ASSERT_NE(p, nullptr);
      EXPECT_GE(static_cast<char*>(p), boot_items);
      EXPECT_LT(static_cast<char*>(p), boot_items + sizeof(boot_items));
      got.push_back(p);
    }
    // Not zinitna()ed yet: the zone cannot grow, so NULL once the array is used up.
    EXPECT_EQ(zalloc(z), nullptr);
    kenv::boot_advance(kenv::boot_phase::VM_READY);
    zinitna(z, "PV ENTRY", 64, 1000, ZONE_INTERRUPT);
    EXPECT_EQ(zalloc_stats_get(z).boot_items, 100);
    void* grown = zalloc(z);
    ASSERT_NE(grown, nullptr);
    EXPECT_EQ(zalloc_owner(grown), z);
    for (void* p : got) zfree(z, p);
    zfree(z, grown);
    EXPECT_TRUE(zcheck(z).empty());
    zalloc_stats s = zalloc_stats_get(z);
    EXPECT_EQ(s.used, 0);
    EXPECT_GT(s.total, 100);
    zdestroy(z);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

TEST_F(ZallocTest, WithoutBootItemsTheBootAllocationPanics) {
  kenv::boot_reset(kenv::boot_phase::EARLY);
  Outcome o = Run1([] {
    vm_zone_t z = zinit("PV ENTRY", 64, 1000, ZONE_INTERRUPT);
    zalloc_flags(z, M_WAITOK);
  });
  EXPECT_EQ(o.kind, Outcome::kPanic);
  EXPECT_EQ(o.title, "slabfuzz: panic: vm_page_alloc: PV ENTRY waits for pages before the VM is up");
}

// ZONE_INTERRUPT: NULL once nentries are used, never blocking, pages never freed.
TEST_F(ZallocTest, InterruptZoneCapAndNeverBlocks) {
  Outcome o = Run1([] {
    vm_zone_t z = zinit("SWAPMETA", 256, 100, ZONE_INTERRUPT);
    EXPECT_EQ(zalloc_stats_get(z).pagemax, 7u);  // 100 * 256 bytes in pages
    std::vector<void*> got;
    for (;;) {
      void* p = zalloc_flags(z, M_INTNOWAIT);
      if (p == nullptr) break;
      got.push_back(p);
      ASSERT_LT(got.size(), 1000u);
    }
    EXPECT_EQ(got.size(), 7u * 16);  // every page of the reserved room, no more
    zalloc_stats s = zalloc_stats_get(z);
    EXPECT_EQ(s.pages, s.pagemax);
    EXPECT_EQ(s.failures, 1u);
    size_t before = kenv::page_source_stats().in_use;
    for (void* p : got) zfree(z, p);
    EXPECT_EQ(kenv::page_source_stats().in_use, before);  // never freed
    EXPECT_TRUE(zcheck(z).empty());
    zdestroy(z);
    EXPECT_EQ(kenv::page_source_stats().in_use, 0u);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

TEST_F(ZallocTest, InterruptZoneTakesTheLastPagesWithoutBlocking) {
  Pages(64);
  Outcome o = Run1([] {
    kenv::page_source_pressure(64);  // every free page withheld
    kenv::page_source_relief(4);     // four left: below both reserved floors
    vm_zone_t z = zinit("SWAPMETA", 256, 1000, ZONE_INTERRUPT);
    vm_zone_t plain = zinit("PLAIN", 256, 0, 0);
    EXPECT_EQ(zalloc_flags(plain, M_NOWAIT), nullptr);  // the normal tier has nothing
    int n = 0;
    std::vector<void*> got;
    while (void* p = zalloc_flags(z, M_INTNOWAIT)) got.push_back(p), n++;
    EXPECT_EQ(n, 4 * 16);
    for (void* p : got) zfree(z, p);
    zdestroy(z);
    zdestroy(plain);
    kenv::page_source_relief(60);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

TEST_F(ZallocTest, PanicFailPanicsInsteadOfNull) {
  Outcome o = Run1([] {
    vm_zone_t z = zinit("FIXED", 1024, 4, ZONE_INTERRUPT | ZONE_PANICFAIL);
    for (int i = 0; i < 100; i++) zalloc(z);
  });
  EXPECT_EQ(o.kind, Outcome::kPanic);
  EXPECT_EQ(o.title, "slabfuzz: panic: zalloc: FIXED: zone exhausted (N items, flags ADDR)");
  kenv::page_source_teardown();  // the panicked run left its pages
}

struct Misuse {
  const char* name;
  void (*fn)(vm_zone_t a, vm_zone_t b);
  const char* title;
};

TEST_F(ZallocTest, MisuseIsDetected) {
  alignas(64) static char foreign[256];
  const Misuse cases[] = {
      {"double free",
       [](vm_zone_t a, vm_zone_t) {
         void* p = zalloc(a);
         zfree(a, p);
         zfree(a, p);
       },
       "slabfuzz: panic: zfree: A: double free of ADDR"},
      {"wrong zone", [](vm_zone_t a, vm_zone_t b) { zfree(b, zalloc(a)); },
       "slabfuzz: panic: zfree: ADDR freed to zone B but belongs to zone A"},
      {"interior pointer",
       [](vm_zone_t a, vm_zone_t) { zfree(a, static_cast<char*>(zalloc(a)) + 16); },
       "slabfuzz: panic: zfree: A: interior pointer ADDR"},
      {"foreign pointer", [](vm_zone_t a, vm_zone_t) { zfree(a, foreign + 64); },
       "slabfuzz: panic: zfree: A: ADDR is not in any slab of a zone"},
      {"destroy with live items",
       [](vm_zone_t a, vm_zone_t) {
         zalloc(a);
         zdestroy(a);
       },
       "slabfuzz: panic: zdestroy: zone A has N live items"},
      {"use after free",
       [](vm_zone_t a, vm_zone_t) {
         auto* p = static_cast<char*>(zalloc(a));
         zfree(a, p);
#ifndef SLABFUZZ_HAVE_ASAN
         p[40] = 1;  // under ASan this write itself is the report (poisoned item)
#endif
         for (int i = 0; i < 10000; i++) zalloc(a);
       },
       "slabfuzz: use-after-free: zone A: free object ADDR was written at offset N"},
  };
  for (const Misuse& m : cases) {
#ifdef SLABFUZZ_HAVE_ASAN
    if (std::string(m.name) == "use after free") continue;
#endif
    SCOPED_TRACE(m.name);
    Outcome o = Run1([&] { m.fn(zinit("A", 64, 0, 0), zinit("B", 64, 0, 0)); });
    EXPECT_EQ(o.kind, Outcome::kPanic);
    EXPECT_EQ(o.title, m.title);
    kenv::page_source_teardown();
    zalloc_reset();
  }
}

// Frees on other CPUs and interrupt-time allocations race the owner's allocations;
// the lists and counts stay consistent over many schedules.
TEST_F(ZallocTest, CrossCpuFreesAndInterruptsKeepTheZoneConsistent) {
  for (uint64_t seed = 0; seed < 30; seed++) {
    vm_zone_t z = nullptr;
    std::vector<void*> handoff, from_intr;
    bool done = false;
    RuntimeConfig c;
    c.ncpus = 3;
    c.seed = seed;
    c.pct_depth = 5;
    Runtime rt(c);
    ASSERT_TRUE(rt.run_on_cpu0([&] { z = zinit("XFREE", 64, 4000, ZONE_INTERRUPT); }).ok());
    rt.spawn(0, "producer", [&] {
      for (int i = 0; i < 1200; i++) {
        if (i % 200 == 0)
          kenv::current_runtime()->post_interrupt(0, [&] {
            for (int k = 0; k < 20; k++)
              if (void* p = zalloc_flags(z, M_INTNOWAIT)) from_intr.push_back(p);
          });
        void* p = zalloc_flags(z, M_WAITOK);
        handoff.push_back(p);
        if (i % 16 == 0) kenv::preempt_point();
      }
      done = true;
    });
    for (int cpu = 1; cpu < 3; cpu++)
      rt.spawn(cpu, "consumer", [&] {
        kenv::consume_handoff(handoff, done, [&](void* p) { zfree(z, p); });
      });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << o.title << o.report;
    Outcome t = rt.run_on_cpu0([&] {
      for (void* p : from_intr) zfree(z, p);
      std::vector<std::string> problems = zcheck(z);
      EXPECT_TRUE(problems.empty()) << problems[0];
      EXPECT_EQ(zalloc_stats_get(z).used, 0);
      zdestroy(z);
    });
    ASSERT_TRUE(t.ok()) << t.title;
  }
}

}  // namespace
