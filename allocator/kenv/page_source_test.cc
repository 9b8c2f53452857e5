// page_source_test.cc - the page source's tiers, fault injection, vm_wait and
// teardown accounting, run on the deterministic runtime.
#include "allocator/kenv/page_source.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/runtime.h"
#include "gtest/gtest.h"

#ifdef SLABFUZZ_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace kenv {
namespace {

class PageSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    boot_reset(boot_phase::RUNNING);
    PageSourceConfig c;
    c.budget_pages = 100;
    c.free_reserved = 20;
    c.interrupt_free_min = 5;
    page_source_init(c);
  }
  void TearDown() override { page_source_teardown(); }

  // Runs fn as a kernel thread on a one-CPU deterministic runtime.
  Outcome OnCpu(std::function<void()> fn) {
    RuntimeConfig rc;
    rc.ncpus = 2;
    Runtime rt(rc);
    rt.spawn(0, "test", std::move(fn));
    return rt.run();
  }
};

TEST_F(PageSourceTest, TiersLeaveTheirReserves) {
  std::vector<void*> got;
  Outcome o = OnCpu([&] {
    // Normal allocations stop when 20 pages are left.
    while (void* p = vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, false, "t")) got.push_back(p);
    EXPECT_EQ(got.size(), 80u);
    EXPECT_EQ(vm_free_count(), 20u);
    // System allocations go down to 5.
    while (void* p = vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_SYSTEM, false, "t")) got.push_back(p);
    EXPECT_EQ(got.size(), 95u);
    // Interrupt allocations take the last page.
    while (void* p = vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_INTERRUPT, false, "t"))
      got.push_back(p);
    EXPECT_EQ(got.size(), 100u);
    EXPECT_EQ(vm_free_count(), 0u);
    for (void* p : got) vm_chunk_free(p, 1);
  });
  ASSERT_TRUE(o.ok()) << o.title;
  EXPECT_EQ(page_source_stats().free, 100u);
  EXPECT_TRUE(page_source_teardown().empty());
}

TEST_F(PageSourceTest, SlabChunksAreAlignedToTheirSize) {
  Outcome o = OnCpu([&] {
    void* p = vm_chunk_alloc(32, 128 * 1024, VM_TIER_NORMAL, false, "slab");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (128 * 1024), 0u);
    EXPECT_EQ(page_source_stats().in_use, 32u);
    vm_chunk_free(p, 32);
  });
  ASSERT_TRUE(o.ok()) << o.title;
}

// Every run sees the arena a fresh process sees: what the last run wrote (into a chunk
// it gave back, and into one it left in use) is zeroes again in the next, so a program
// that reads memory nobody wrote runs the same in the first run of a process and later.
TEST_F(PageSourceTest, ARunSeesNothingTheLastRunWrote) {
  for (int run = 0; run < 2; run++) {
    Outcome o = OnCpu([&] {
      void* freed = vm_chunk_alloc(32, 128 * 1024, VM_TIER_NORMAL, false, "slab");
      void* kept = vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, false, "page");
      ASSERT_NE(freed, nullptr);
      ASSERT_NE(kept, nullptr);
      const auto* f = static_cast<const unsigned char*>(freed);
      const auto* k = static_cast<const unsigned char*>(kept);
      for (size_t i = 0; i < 128 * 1024; i++) ASSERT_EQ(f[i], 0) << "run " << run << " byte " << i;
      for (size_t i = 0; i < PAGE_SIZE; i++) ASSERT_EQ(k[i], 0) << "run " << run << " byte " << i;
      memset(freed, 0xa5, 128 * 1024);
      memset(kept, 0x5a, PAGE_SIZE);
      vm_chunk_free(freed, 32);
    });
    ASSERT_TRUE(o.ok()) << o.title;
    page_source_teardown();
    PageSourceConfig c;
    c.budget_pages = 100;
    c.free_reserved = 20;
    c.interrupt_free_min = 5;
    page_source_init(c);
  }
}

// Under ASan a chunk is addressable while it is out and poisoned once it is back (a use
// of a slab after it went back to the VM is reported), unless asked to stay poisoned.
TEST_F(PageSourceTest, FreedChunksArePoisoned) {
#ifndef SLABFUZZ_HAVE_ASAN
  GTEST_SKIP() << "needs ASan";
#else
  Outcome o = OnCpu([&] {
    void* slab = vm_chunk_alloc(32, 128 * 1024, VM_TIER_NORMAL, false, "slab");
    void* page = vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, false, "page");
    ASSERT_NE(slab, nullptr);
    ASSERT_NE(page, nullptr);
    EXPECT_EQ(__asan_region_is_poisoned(slab, 128 * 1024), nullptr);
    EXPECT_EQ(__asan_region_is_poisoned(page, PAGE_SIZE), nullptr);
    vm_chunk_free(slab, 32);
    vm_chunk_free(page, 1);
    EXPECT_TRUE(__asan_address_is_poisoned(slab));
    EXPECT_TRUE(__asan_address_is_poisoned(static_cast<char*>(slab) + 128 * 1024 - 1));
    EXPECT_TRUE(__asan_address_is_poisoned(page));
    // Asked for a poisoned chunk: it comes as it went back.
    void* again = vm_chunk_alloc(32, 128 * 1024, VM_TIER_NORMAL, false, "slab", true);
    ASSERT_NE(again, nullptr);
    EXPECT_TRUE(__asan_address_is_poisoned(again));
    vm_chunk_free(again, 32, true);
  });
  ASSERT_TRUE(o.ok()) << o.title;
#endif
}

TEST_F(PageSourceTest, FailNthFailsExactlyTheNthRequest) {
  PageSourceConfig c;
  c.budget_pages = 100;
  c.fail_nth = 3;
  page_source_init(c);
  std::vector<bool> results;
  Outcome o = OnCpu([&] {
    for (int i = 0; i < 5; i++) {
      void* p = vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, false, "t");
      results.push_back(p != nullptr);
      if (p) vm_chunk_free(p, 1);
    }
  });
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(results, (std::vector<bool>{true, true, false, true, true}));
  EXPECT_EQ(page_source_stats().injected, 1u);
}

TEST_F(PageSourceTest, FailuresHitOnlyTheConfiguredTiers) {
  PageSourceConfig c;
  c.budget_pages = 100;
  c.fail_rate_ppm = 1000000;
  c.fail_tier_mask = 1u << VM_TIER_NORMAL;
  page_source_init(c);
  Outcome o = OnCpu([&] {
    EXPECT_EQ(vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, false, "t"), nullptr);
    void* p = vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_SYSTEM, false, "t");
    EXPECT_NE(p, nullptr);
    vm_chunk_free(p, 1);
  });
  ASSERT_TRUE(o.ok());
}

TEST_F(PageSourceTest, PressureWithholdsAndReliefReturns) {
  Outcome o = OnCpu([&] {
    page_source_pressure(70);
    EXPECT_EQ(vm_free_count(), 30u);
    EXPECT_EQ(page_source_stats().withheld, 70u);
    page_source_relief(70);
    EXPECT_EQ(vm_free_count(), 100u);
  });
  ASSERT_TRUE(o.ok());
}

TEST_F(PageSourceTest, TeardownNamesLeakedChunks) {
  Outcome o = OnCpu([&] {
    vm_chunk_alloc(2, PAGE_SIZE, VM_TIER_NORMAL, false, "leaky-zone");
  });
  ASSERT_TRUE(o.ok());
  auto leaks = page_source_teardown();
  ASSERT_EQ(leaks.size(), 1u);
  EXPECT_NE(leaks[0].find("2 pages leaky-zone"), std::string::npos) << leaks[0];
}

// The owner is named as it was when the chunk was taken: by teardown the zone that
// took it may be gone and its descriptor, which held the name, reused or poisoned.
TEST_F(PageSourceTest, TeardownNamesTheOwnerAfterItsNameIsGone) {
  auto name = std::make_unique<std::string>("gone-zone-with-a-long-name");
  Outcome o = OnCpu([&] {
    vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, false, name->c_str());
    vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, false, "other-zone");
  });
  ASSERT_TRUE(o.ok());
  name->assign(name->size(), 'X');
  name.reset();
  auto leaks = page_source_teardown();
  ASSERT_EQ(leaks.size(), 2u);
  std::string all = leaks[0] + "\n" + leaks[1];
  EXPECT_NE(all.find("1 pages gone-zone-with-a-long-name"), std::string::npos) << all;
  EXPECT_NE(all.find("1 pages other-zone"), std::string::npos) << all;
}

TEST_F(PageSourceTest, BlockingRequestWaitsForAFree) {
  RuntimeConfig rc;
  rc.ncpus = 2;
  Runtime rt(rc);
  std::vector<void*> held;
  bool got = false;
  int released = 0;
  rt.spawn(0, "hog", [&] {
    while (void* p = vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, false, "hog")) held.push_back(p);
    // A blocking request now sleeps until the releaser frees pages.
    void* p = vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, true, "hog");
    got = p != nullptr;
    EXPECT_GT(released, 0);
    vm_chunk_free(p, 1);
  });
  rt.spawn(1, "releaser", [&] {
    while (held.size() < 80) tsleep(vm_pageout_chan(), "pageout", 0);
    for (void* p : held) {
      vm_chunk_free(p, 1);
      released++;
    }
  });
  Outcome o = rt.run();
  ASSERT_TRUE(o.ok()) << o.title << o.report;
  EXPECT_TRUE(got);
  EXPECT_GE(page_source_stats().waits, 1u);
}

TEST_F(PageSourceTest, WaitingWithNobodyToFreeIsADeadlock) {
  Outcome o = OnCpu([&] {
    while (vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, false, "hog")) {
    }
    vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, true, "hog");
  });
  EXPECT_EQ(o.kind, Outcome::kDeadlock);
  EXPECT_EQ(o.title, "slabfuzz: deadlock: every thread waits: N CPU threads (vmwait)");
}

TEST_F(PageSourceTest, NothingBeforeTheVmIsUp) {
  boot_reset(boot_phase::EARLY);
  Outcome o = OnCpu([&] {
    EXPECT_EQ(vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_INTERRUPT, false, "boot"), nullptr);
    vm_chunk_alloc(1, PAGE_SIZE, VM_TIER_NORMAL, true, "boot");
  });
  boot_reset(boot_phase::RUNNING);
  EXPECT_EQ(o.kind, Outcome::kPanic);
  EXPECT_EQ(o.title, "slabfuzz: panic: vm_page_alloc: boot waits for pages before the VM is up");
}

}  // namespace
}  // namespace kenv
