// vm_test.cc - the two problems that block retiring zalloc, shown with real
// assertions on the deterministic runtime: (A) the boot sequence fails with naive
// kmalloc_obj zones and succeeds with boot slabs; (B) a low-memory pageout deadlocks
// with naive zones (reported as a deadlock, not a hang) and completes with spare slabs.
#include "allocator/vm/vm.h"

#include <memory>

#include "allocator/backend/backend.h"
#include "allocator/kenv/malloc.h"
#include "allocator/kenv/page_source.h"
#include "allocator/kenv/runtime.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"
#include "gtest/gtest.h"

namespace slabfuzz {
namespace {

using kenv::Outcome;

class VmTest : public ::testing::TestWithParam<uint64_t> {
 protected:
  void SetUp() override { backend_ = make_kmalloc_obj_backend(); }
  void TearDown() override {
    vm_.reset();
    kenv::page_source_teardown();
    backend_->reset();
    kenv::boot_reset(kenv::boot_phase::RUNNING);
  }
  void InitPages(size_t budget, size_t free_reserved, size_t intr_min, size_t target) {
    kenv::PageSourceConfig pc;
    pc.budget_pages = budget;
    pc.free_reserved = free_reserved;
    pc.interrupt_free_min = intr_min;
    pc.free_target = target;
    kenv::page_source_init(pc);
  }

  Outcome Boot(VmMode mode) {
    InitPages(4096, 64, 16, 128);
    kenv::boot_reset(kenv::boot_phase::EARLY);
    kenv::RuntimeConfig rc;
    rc.ncpus = 2;
    kenv::Runtime rt(rc);
    rt.spawn(0, "boot", [&] {
      VmOptions o;
      o.mode = mode;
      vm_ = std::make_unique<Vm>(*backend_, o);
      vm_->bootstrap();
      EXPECT_EQ(kenv::current_boot_phase(), kenv::boot_phase::VM_READY);
      for (int i = 0; i < 100; i++) EXPECT_TRUE(vm_->fault(M_WAITOK));
      vm_->teardown();
    });
    return rt.run();
  }

  // Two CPUs fault in more pages than the machine has; the pageout daemon must page
  // out to let them finish. Its target is just above the normal tier's floor, so it
  // acts only once memory has run out (a spike faster than the daemon): a new
  // SWAPMETA slab (32 pages) is then beyond even the system tier (floor 40).
  Outcome Pageout(VmMode mode, uint64_t seed) {
    InitPages(640, 64, 40, 65);
    kenv::RuntimeConfig rc;
    rc.ncpus = 2;
    rc.seed = seed;
    kenv::Runtime rt(rc);
    Outcome setup = rt.run_on_cpu0([&] {
      VmOptions o;
      o.mode = mode;
      vm_ = std::make_unique<Vm>(*backend_, o);
    });
    EXPECT_TRUE(setup.ok()) << setup.title;
    rt.spawn(0, "pagedaemon", [&] { vm_->pageout_daemon(); }, /*daemon=*/true);
    for (int cpu = 0; cpu < 2; cpu++)
      rt.spawn(cpu, "faulter", [&] {
        for (int i = 0; i < 400; i++) {
          EXPECT_TRUE(vm_->fault(M_WAITOK));
          if (i % 8 == 0) kenv::preempt_point();
        }
      });
    Outcome o = rt.run();
    if (!o.ok()) {
      kenv::PageSourceStats ps = kenv::page_source_stats();
      o.report += "free " + std::to_string(ps.free) + " in_use " + std::to_string(ps.in_use) +
                  " paged out " +
                  std::to_string(vm_->stats().pages_paged_out) + " swapmeta failures " +
                  std::to_string(vm_->stats().swapmeta_failures) + " faults " +
                  std::to_string(vm_->stats().faults) + "\n";
    }
    if (o.ok()) {
      EXPECT_GT(vm_->stats().pages_paged_out, 0u);
      Outcome t = rt.run_on_cpu0([&] { vm_->teardown(); });
      EXPECT_TRUE(t.ok()) << t.title;
      EXPECT_TRUE(kenv::page_source_teardown().empty());
    }
    return o;
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Vm> vm_;
};

TEST_F(VmTest, NaiveBootFails) {
  Outcome o = Boot(VmMode::kNaive);
  EXPECT_EQ(o.kind, Outcome::kPanic);
  EXPECT_EQ(o.title, "slabfuzz: panic: vm_page_alloc: PV ENTRY waits for pages before the VM is up")
      << o.report;
}

TEST_F(VmTest, ReservedBootSucceeds) {
  Outcome o = Boot(VmMode::kReserved);
  EXPECT_TRUE(o.ok()) << o.title << o.report;
  EXPECT_TRUE(kenv::page_source_teardown().empty());
}

TEST_P(VmTest, NaivePageoutDeadlocks) {
  Outcome o = Pageout(VmMode::kNaive, GetParam());
  EXPECT_EQ(o.kind, Outcome::kDeadlock) << o.title;
  EXPECT_NE(o.title.find("pagedaemon (pgdaemon)"), std::string::npos) << o.title;
}

TEST_P(VmTest, ReservedPageoutCompletes) {
  Outcome o = Pageout(VmMode::kReserved, GetParam());
  EXPECT_TRUE(o.ok()) << o.title << o.report;
}

INSTANTIATE_TEST_SUITE_P(Seeds, VmTest, ::testing::Range<uint64_t>(1, 21));

}  // namespace
}  // namespace slabfuzz
