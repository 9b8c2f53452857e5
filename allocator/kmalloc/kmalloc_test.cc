// kmalloc_test.cc - general kmalloc's own semantics on the deterministic runtime:
// size classes and large allocations, per-type accounting and limits, flags, the
// misuse it detects, and cross-CPU frees keeping the accounting exact.
#include "allocator/kmalloc/kmalloc.h"

#include <cstring>
#include <functional>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/page_source.h"
#include "allocator/kenv/runtime.h"
#include "allocator/kenv/testing.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"
#include "gtest/gtest.h"

namespace {

using kenv::Outcome;
using kenv::Runtime;
using kenv::RuntimeConfig;

class KmallocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kenv::boot_reset(kenv::boot_phase::RUNNING);
    kenv::PageSourceConfig pc;
    pc.budget_pages = 64 * KMALLOC_SLAB_PAGES;
    pc.free_reserved = 2 * KMALLOC_SLAB_PAGES;
    pc.interrupt_free_min = KMALLOC_SLAB_PAGES;
    kenv::page_source_init(pc);
  }
  void TearDown() override {
    kenv::page_source_teardown();
    kmalloc_reset();
    kmalloc_obj_reset();
  }
  Outcome Run1(std::function<void()> fn) {
    RuntimeConfig c;
    c.ncpus = 1;
    Runtime rt(c);
    rt.spawn(0, "cpu0", [fn] {
      kmalloc_init();
      fn();
    });
    return rt.run();
  }
};

TEST_F(KmallocTest, SizeClassesLargeSizesAndAccounting) {
  Outcome o = Run1([] {
    static malloc_type M_TEST;
    kmalloc_type_init(&M_TEST, "TEST", 0);
    EXPECT_EQ(kmalloc_good_size(1), 64u);
    EXPECT_EQ(kmalloc_good_size(65), 128u);
    EXPECT_EQ(kmalloc_good_size(32768), 32768u);
    EXPECT_EQ(kmalloc_good_size(32769), 36864u);  // whole pages
    const size_t sizes[] = {1, 64, 65, 200, 1000, 4096, 5000, 32768, 40000, 131072};
    std::vector<void*> got;
    int64_t expect = 0;
    for (size_t s : sizes) {
      auto* p = static_cast<unsigned char*>(kmalloc(s, &M_TEST, M_WAITOK | M_ZERO));
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
      for (size_t k = 0; k < s; k += 97) ASSERT_EQ(p[k], 0);
      memset(p, 0xa5, s);
      expect += static_cast<int64_t>(kmalloc_good_size(s));
      got.push_back(p);
      if (s > KMALLOC_MAX_CLASS)
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kenv::PAGE_SIZE, 0u);
      else
        EXPECT_EQ(kmalloc_obj_owner(p), kmalloc_class_zone(s));
    }
    kmalloc_type_stats st = kmalloc_type_stats_get(&M_TEST);
    EXPECT_EQ(st.memuse, expect);
    EXPECT_EQ(st.inuse, 10);
    EXPECT_EQ(st.calls, 10u);
    for (void* p : got) kfree(p, &M_TEST);
    st = kmalloc_type_stats_get(&M_TEST);
    EXPECT_EQ(st.memuse, 0);
    EXPECT_EQ(st.inuse, 0);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

TEST_F(KmallocTest, LimitGivesNullWithNullOkAndPanicsOtherwise) {
  Outcome o = Run1([] {
    static malloc_type M_SMALL;
    kmalloc_type_init(&M_SMALL, "SMALL", 1024);
    std::vector<void*> got;
    for (int i = 0; i < 8; i++) got.push_back(kmalloc(128, &M_SMALL, M_WAITOK));
    EXPECT_EQ(kmalloc(1, &M_SMALL, M_WAITOK | M_NULLOK), nullptr);
    EXPECT_EQ(kmalloc_type_stats_get(&M_SMALL).failed, 1u);
    EXPECT_EQ(kmalloc(KMALLOC_MAX_LARGE + 1, &M_SMALL, M_WAITOK | M_NULLOK), nullptr);
    EXPECT_EQ(kmalloc_type_stats_get(&M_SMALL).failed, 2u);
    kfree(got.back(), &M_SMALL);
    got.pop_back();
    void* p = kmalloc(100, &M_SMALL, M_WAITOK | M_NULLOK);
    EXPECT_NE(p, nullptr);
    got.push_back(p);
    for (void* q : got) kfree(q, &M_SMALL);
    kmalloc(2000, &M_SMALL, M_WAITOK);
  });
  EXPECT_EQ(o.kind, Outcome::kPanic);
  EXPECT_EQ(o.title, "slabfuzz: panic: kmalloc: SMALL: limit exceeded (size N, flags ADDR)");
}

TEST_F(KmallocTest, NowaitLargeGetsNullWithoutBlocking) {
  Outcome o = Run1([] {
    static malloc_type M_BIG;
    kmalloc_type_init(&M_BIG, "BIG", 0);
    kenv::page_source_pressure(1 << 20);  // every free page withheld
    EXPECT_EQ(kmalloc(100000, &M_BIG, M_NOWAIT), nullptr);
    EXPECT_EQ(kmalloc_type_stats_get(&M_BIG).failed, 1u);
    kenv::page_source_relief(1 << 20);
  });
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

struct Misuse {
  const char* name;
  void (*fn)(malloc_type* a, malloc_type* b);
  const char* title;
};

TEST_F(KmallocTest, MisuseIsDetected) {
  alignas(64) static char foreign[256];
  static malloc_type A, B;
  const Misuse cases[] = {
      {"double free",
       [](malloc_type* a, malloc_type*) {
         void* p = kmalloc(64, a, M_WAITOK);
         kfree(p, a);
         kfree(p, a);
       },
       "slabfuzz: panic: kfree_obj: kmalloc-N: double free of ADDR"},
      {"interior pointer",
       [](malloc_type* a, malloc_type*) { kfree(static_cast<char*>(kmalloc(64, a, M_WAITOK)) + 8, a); },
       "slabfuzz: panic: kfree_obj: kmalloc-N: interior pointer ADDR"},
      {"large interior pointer",
       [](malloc_type* a, malloc_type*) {
         kfree(static_cast<char*>(kmalloc(100000, a, M_WAITOK)) + 64, a);
       },
       "slabfuzz: panic: kfree: A: interior pointer ADDR"},
      {"large freed with another type",
       [](malloc_type* a, malloc_type* b) { kfree(kmalloc(100000, a, M_WAITOK), b); },
       "slabfuzz: panic: kfree: ADDR freed to type B but belongs to type A"},
      {"foreign pointer", [](malloc_type* a, malloc_type*) { kfree(foreign + 64, a); },
       "slabfuzz: panic: kfree: A: ADDR is not in any slab"},
      {"another zone's object",
       [](malloc_type* a, malloc_type*) {
         kmalloc_zone* z = kmalloc_create_obj("OTHER", 64, 0);
         kfree(kmalloc_obj(64, z, M_WAITOK), a);
       },
       "slabfuzz: panic: kfree: A: ADDR belongs to zone OTHER, not to kmalloc"},
  };
  for (const Misuse& m : cases) {
    SCOPED_TRACE(m.name);
    kmalloc_type_init(&A, "A", 0);
    kmalloc_type_init(&B, "B", 0);
    Outcome o = Run1([&] { m.fn(&A, &B); });
    EXPECT_EQ(o.kind, Outcome::kPanic);
    EXPECT_EQ(o.title, m.title);
    kenv::page_source_teardown();
    kmalloc_reset();
    kmalloc_obj_reset();
  }
}

// Allocations on one CPU freed on others: the per-type totals stay exact.
TEST_F(KmallocTest, CrossCpuFreesKeepAccountingExact) {
  for (uint64_t seed = 0; seed < 20; seed++) {
    static malloc_type M_X;
    kmalloc_type_init(&M_X, "XFREE", 0);
    std::vector<void*> handoff;
    bool done = false;
    RuntimeConfig c;
    c.ncpus = 3;
    c.seed = seed;
    c.pct_depth = 5;
    Runtime rt(c);
    ASSERT_TRUE(rt.run_on_cpu0([] { kmalloc_init(); }).ok());
    rt.spawn(0, "producer", [&] {
      for (int i = 0; i < 600; i++) {
        handoff.push_back(kmalloc(i % 5 == 0 ? 40000 : 16 << (i % 7), &M_X, M_WAITOK));
        if (i % 16 == 0) kenv::preempt_point();
      }
      done = true;
    });
    for (int cpu = 1; cpu < 3; cpu++)
      rt.spawn(cpu, "consumer", [&] {
        kenv::consume_handoff(handoff, done, [&](void* p) { kfree(p, &M_X); });
      });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << o.title << o.report;
    kmalloc_type_stats st = kmalloc_type_stats_get(&M_X);
    EXPECT_EQ(st.memuse, 0);
    EXPECT_EQ(st.inuse, 0);
    EXPECT_EQ(st.calls, 600u);
    Outcome t = rt.run_on_cpu0([] {
      for (int c = 0; c < KMALLOC_NCLASSES; c++)
        EXPECT_TRUE(kmalloc_obj_check(kmalloc_class_zone(size_t{64} << c)).empty());
    });
    ASSERT_TRUE(t.ok()) << t.title;
    kenv::page_source_teardown();
    kmalloc_reset();
    kmalloc_obj_reset();
  }
}

}  // namespace
