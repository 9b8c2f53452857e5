// objcache_test.cc - objcache's own semantics on the deterministic runtime: magazines
// and the depot, constructors and destructors only at the back end, the object
// budget (exhausted once, then sleep or NULL), the misuse it detects, reclaim, and
// cross-CPU puts keeping the cache consistent.
#include "allocator/objcache/objcache.h"

#include <functional>
#include <set>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/page_source.h"
#include "allocator/kenv/runtime.h"
#include "allocator/kenv/testing.h"
#include "allocator/kmalloc/kmalloc.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"
#include "gtest/gtest.h"

namespace {

using kenv::Outcome;
using kenv::Runtime;
using kenv::RuntimeConfig;

struct Counts {
  int ctors = 0, dtors = 0;
};

bool ctor(void* obj, void* priv, int) {
  static_cast<Counts*>(priv)->ctors++;
  *static_cast<uint64_t*>(obj) = 0xc0ffee;  // the constructed state
  return true;
}
void dtor(void* obj, void* priv) {
  EXPECT_EQ(*static_cast<uint64_t*>(obj), 0xc0ffeeu);
  static_cast<Counts*>(priv)->dtors++;
}

class ObjcacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kenv::boot_reset(kenv::boot_phase::RUNNING);
    kenv::PageSourceConfig pc;
    pc.budget_pages = 64 * KMALLOC_SLAB_PAGES;
    pc.free_reserved = 2 * KMALLOC_SLAB_PAGES;
    pc.interrupt_free_min = KMALLOC_SLAB_PAGES;
    kenv::page_source_init(pc);
    kmalloc_type_init(&mtype_, "OBJTEST", 0);
  }
  void TearDown() override { Reset(); }
  void Reset() {
    kenv::page_source_teardown();
    objcache_reset();
    kmalloc_reset();
    kmalloc_obj_reset();
  }
  Outcome Run(int ncpus, uint64_t seed, std::vector<std::function<void()>> fns) {
    RuntimeConfig c;
    c.ncpus = ncpus;
    c.seed = seed;
    Runtime rt(c);
    for (size_t i = 0; i < fns.size(); i++)
      rt.spawn(static_cast<int>(i % ncpus), "cpu" + std::to_string(i), fns[i]);
    return rt.run();
  }
  malloc_type mtype_;
};

TEST_F(ObjcacheTest, MagazinesKeepObjectsConstructed) {
  Counts n;
  Outcome o = Run(1, 1, {[&] {
    objcache* oc = objcache_create_mbacked(&mtype_, 200, 0, 8, ctor, dtor, &n);
    std::vector<void*> got;
    std::set<void*> seen;
    for (int i = 0; i < 100; i++) {
      void* p = objcache_get(oc, M_WAITOK);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(*static_cast<uint64_t*>(p), 0xc0ffeeu);
      EXPECT_TRUE(seen.insert(p).second);
      EXPECT_EQ(objcache_owner(p), oc);
      got.push_back(p);
    }
    EXPECT_EQ(n.ctors, 100);
    for (void* p : got) objcache_put(oc, p);
    objcache_stats s = objcache_stats_get(oc);
    // 2 per-CPU magazines + 8 depot magazines of 8 rounds: 80 cached, 20 went back.
    EXPECT_EQ(s.cached, 80);
    EXPECT_EQ(n.dtors, 20);
    EXPECT_EQ(s.outstanding, 0);
    EXPECT_TRUE(objcache_check(oc).empty());
    // Gets are now served from magazines: no constructor runs.
    got.clear();
    for (int i = 0; i < 80; i++) got.push_back(objcache_get(oc, M_WAITOK));
    EXPECT_EQ(n.ctors, 100);
    for (void* p : got) objcache_put(oc, p);
    // Reclaim gives the depot's full magazines back, destructing each object once.
    EXPECT_EQ(objcache_reclaim_all(), 64);
    EXPECT_EQ(n.dtors, 84);
    objcache_drain_cpu(oc);
    EXPECT_EQ(n.dtors, 100);
    EXPECT_EQ(objcache_stats_get(oc).cached, 0);
    EXPECT_TRUE(objcache_check(oc).empty());
    objcache_destroy(oc);
    EXPECT_EQ(kmalloc_type_stats_get(&mtype_).inuse, 0);
  }});
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

TEST_F(ObjcacheTest, BudgetExhaustedThenNullOrSleepUntilAPut) {
  objcache* oc = nullptr;
  void* given = nullptr;
  bool putter_done = false;
  // Both threads on CPU 0: a put lands in the sleeper's own CPU magazine (one put on
  // another CPU stays in that CPU's magazine, invisible to this get, as upstream).
  Outcome o = Run(1, 3, {[&] {
    oc = objcache_create_mbacked(&mtype_, 64, 10, 4, nullptr, nullptr, nullptr);
    std::vector<void*> got;
    for (int i = 0; i < 10; i++) got.push_back(objcache_get(oc, M_WAITOK));
    EXPECT_EQ(objcache_stats_get(oc).exhausted_reported, 0);
    EXPECT_EQ(objcache_get(oc, M_NOWAIT), nullptr);
    EXPECT_EQ(objcache_stats_get(oc).exhausted_reported, 1);
    EXPECT_EQ(objcache_stats_get(oc).gets_null, 1u);
    given = got.back();  // the other CPU puts it back a little later
    got.pop_back();
    void* p = objcache_get(oc, M_WAITOK);  // sleeps until then
    EXPECT_TRUE(putter_done);
    EXPECT_EQ(p, given);
    got.push_back(p);
    for (void* q : got) objcache_put(oc, q);
    EXPECT_TRUE(objcache_check(oc).empty());
    objcache_destroy(oc);
  }, [&] {
    while (given == nullptr) kenv::cpu_spinwait();
    for (int i = 0; i < 50; i++) kenv::preempt_point();
    putter_done = true;
    objcache_put(oc, given);
  }});
  ASSERT_TRUE(o.ok()) << o.title << o.report;
}

TEST_F(ObjcacheTest, ExhaustedWithoutAPutDeadlocksAndIsReported) {
  Outcome o = Run(1, 1, {[&] {
    objcache* oc = objcache_create_mbacked(&mtype_, 64, 2, 4, nullptr, nullptr, nullptr);
    objcache_get(oc, M_WAITOK);
    objcache_get(oc, M_WAITOK);
    objcache_get(oc, M_WAITOK);
  }});
  EXPECT_EQ(o.kind, Outcome::kDeadlock);
  EXPECT_NE(o.title.find("objcache_get"), std::string::npos) << o.title;
}

struct Misuse {
  const char* name;
  void (*fn)(objcache* a, objcache* b);
  const char* title;
};

TEST_F(ObjcacheTest, MisuseIsDetected) {
  alignas(64) static char foreign[256];
  const Misuse cases[] = {
      {"double put",
       [](objcache* a, objcache*) {
         void* p = objcache_get(a, M_WAITOK);
         objcache_put(a, p);
         objcache_put(a, p);
       },
       "slabfuzz: panic: objcache_put: A: double free of ADDR (put twice)"},
      {"put to another cache",
       [](objcache* a, objcache* b) { objcache_put(b, objcache_get(a, M_WAITOK)); },
       "slabfuzz: panic: objcache_put: ADDR freed to zone B but belongs to zone A"},
      {"foreign object", [](objcache* a, objcache*) { objcache_put(a, foreign + 64); },
       "slabfuzz: panic: objcache_put: A: ADDR is not an object of any objcache"},
      {"destroy with objects out",
       [](objcache* a, objcache*) {
         objcache_get(a, M_WAITOK);
         objcache_destroy(a);
       },
       "slabfuzz: panic: objcache_destroy: A has N objects outstanding"},
  };
  for (const Misuse& m : cases) {
    SCOPED_TRACE(m.name);
    static malloc_type A, B;
    kmalloc_type_init(&A, "A", 0);
    kmalloc_type_init(&B, "B", 0);
    Outcome o = Run(1, 1, {[&] {
      m.fn(objcache_create_mbacked(&A, 64, 0, 0, nullptr, nullptr, nullptr),
           objcache_create_mbacked(&B, 64, 0, 0, nullptr, nullptr, nullptr));
    }});
    EXPECT_EQ(o.kind, Outcome::kPanic);
    EXPECT_EQ(o.title, m.title);
    Reset();
  }
}

// Objects got on one CPU and put on others move through the depot; the counts and
// magazines stay consistent over many schedules.
TEST_F(ObjcacheTest, CrossCpuPutsKeepTheCacheConsistent) {
  for (uint64_t seed = 0; seed < 20; seed++) {
    objcache* oc = nullptr;
    std::vector<void*> handoff;
    bool done = false;
    Counts n;
    RuntimeConfig c;
    c.ncpus = 3;
    c.seed = seed;
    c.pct_depth = 5;
    Runtime rt(c);
    ASSERT_TRUE(rt.run_on_cpu0([&] {
      oc = objcache_create_mbacked(&mtype_, 128, 500, 8, ctor, dtor, &n);
    }).ok());
    rt.spawn(0, "getter", [&] {
      for (int i = 0; i < 1000; i++) {
        handoff.push_back(objcache_get(oc, M_WAITOK));
        if (i % 16 == 0) kenv::preempt_point();
      }
      done = true;
    });
    for (int cpu = 1; cpu < 3; cpu++)
      rt.spawn(cpu, "putter", [&] {
        kenv::consume_handoff(handoff, done, [&](void* p) { objcache_put(oc, p); });
      });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << o.title << o.report;
    Outcome t = rt.run_on_cpu0([&] {
      std::vector<std::string> problems = objcache_check(oc);
      EXPECT_TRUE(problems.empty()) << problems[0];
      objcache_stats s = objcache_stats_get(oc);
      EXPECT_EQ(s.outstanding, 0);
      EXPECT_EQ(static_cast<uint64_t>(n.ctors), s.backend_allocs);
      objcache_destroy(oc);
      EXPECT_EQ(n.ctors, n.dtors);
    });
    ASSERT_TRUE(t.ok()) << t.title;
    Reset();
  }
}

}  // namespace
