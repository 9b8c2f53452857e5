// consumers_test.cc - the same VM consumer scenarios over every backend and
// configuration, each with the outcome it must have:
//   boot          the boot sequence (PV and MAP entries before VM_READY);
//   pageout       low memory: two CPUs fault in more pages than the machine has, the
//                 pageout daemon must allocate SWAPMETA to free pages;
//   interrupts    interrupts allocate PV and MAP entries (M_INTNOWAIT) in the middle
//                 of a CPU's faults; the zones stay consistent;
//   cross-cpu     pages faulted on one CPU are unmapped on others (cross-CPU frees).
// zalloc (today's kernel) and reserved kmalloc_obj (the proposal) survive boot and
// pressure; naive kmalloc_obj, and kmalloc and objcache (which have neither boot
// memory nor a reserve), fail boot and deadlock under pressure.
#include <memory>
#include <string>

#include "allocator/backend/backend.h"
#include "allocator/kenv/malloc.h"
#include "allocator/kenv/page_source.h"
#include "allocator/kenv/runtime.h"
#include "allocator/vm/vm.h"
#include "gtest/gtest.h"

namespace slabfuzz {
namespace {

using kenv::Outcome;

struct Config {
  const char* backend;
  VmMode mode;
  bool survives;  // boot and pressure
  const char* boot_panic;  // the boot failure's title when it does not
};

std::string ConfigName(const ::testing::TestParamInfo<Config>& i) {
  return std::string(i.param.backend) + "_" + vm_mode_name(i.param.mode);
}

class ConsumersTest : public ::testing::TestWithParam<Config> {
 protected:
  void SetUp() override { backend_ = make_backend(GetParam().backend); }
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
  void MakeVm() {
    VmOptions o;
    o.mode = GetParam().mode;
    vm_ = std::make_unique<Vm>(*backend_, o);
  }
  // Teardown on CPU 0: every zone consistent, every entry and page back.
  void ExpectCleanTeardown(kenv::Runtime& rt) {
    Outcome t = rt.run_on_cpu0([&] {
      for (void* z : {vm_->pv_zone(), vm_->map_zone(), vm_->swap_zone()}) {
        std::vector<std::string> problems = backend_->check(z, true);
        EXPECT_TRUE(problems.empty()) << problems[0];
      }
      vm_->teardown();
    });
    EXPECT_TRUE(t.ok()) << t.title << t.report;
    std::string title, report;
    EXPECT_TRUE(kenv::page_source_teardown_clean(&title, &report)) << title << report;
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Vm> vm_;
};

TEST_P(ConsumersTest, Boot) {
  InitPages(4096, 64, 16, 128);
  kenv::boot_reset(kenv::boot_phase::EARLY);
  kenv::RuntimeConfig rc;
  rc.ncpus = 2;
  kenv::Runtime rt(rc);
  rt.spawn(0, "boot", [&] {
    MakeVm();
    vm_->bootstrap();
    for (int i = 0; i < 100; i++) EXPECT_TRUE(vm_->fault(M_WAITOK));
  });
  Outcome o = rt.run();
  if (GetParam().survives) {
    ASSERT_TRUE(o.ok()) << o.title << o.report;
    ExpectCleanTeardown(rt);
  } else {
    EXPECT_EQ(o.kind, Outcome::kPanic);
    EXPECT_EQ(o.title, GetParam().boot_panic);
  }
}

TEST_P(ConsumersTest, Pageout) {
  for (uint64_t seed = 1; seed <= 6; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    InitPages(640, 64, 40, 65);
    kenv::RuntimeConfig rc;
    rc.ncpus = 2;
    rc.seed = seed;
    kenv::Runtime rt(rc);
    ASSERT_TRUE(rt.run_on_cpu0([&] { MakeVm(); }).ok());
    rt.spawn(0, "pagedaemon", [&] { vm_->pageout_daemon(); }, /*daemon=*/true);
    for (int cpu = 0; cpu < 2; cpu++)
      rt.spawn(cpu, "faulter", [&] {
        for (int i = 0; i < 400; i++) {
          EXPECT_TRUE(vm_->fault(M_WAITOK));
          if (i % 8 == 0) kenv::preempt_point();
        }
      });
    Outcome o = rt.run();
    if (GetParam().survives) {
      ASSERT_TRUE(o.ok()) << o.title << o.report;
      EXPECT_GT(vm_->stats().pages_paged_out, 0u);
      ExpectCleanTeardown(rt);
    } else {
      EXPECT_EQ(o.kind, Outcome::kDeadlock) << o.title;
      EXPECT_NE(o.title.find("pagedaemon (pgdaemon)"), std::string::npos) << o.title;
    }
    TearDown();
    SetUp();
  }
}

TEST_P(ConsumersTest, InterruptTimeAllocation) {
  for (uint64_t seed = 1; seed <= 6; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    InitPages(4096, 64, 16, 128);
    kenv::RuntimeConfig rc;
    rc.ncpus = 2;
    rc.seed = seed;
    kenv::Runtime rt(rc);
    ASSERT_TRUE(rt.run_on_cpu0([&] { MakeVm(); }).ok());
    int intr_got = 0;
    for (int cpu = 0; cpu < 2; cpu++)
      rt.spawn(cpu, "faulter", [&, cpu] {
        for (int i = 0; i < 300; i++) {
          if (i % 50 == 0)
            kenv::current_runtime()->post_interrupt(cpu, [&] {
              // An interrupt maps a page for a driver: PV and MAP entries, no waiting.
              void* pv = backend_->alloc(vm_->pv_zone(), M_INTNOWAIT);
              void* me = backend_->alloc(vm_->map_zone(), M_INTNOWAIT);
              intr_got += (pv != nullptr) + (me != nullptr);
              if (pv) backend_->free(vm_->pv_zone(), pv);
              if (me) backend_->free(vm_->map_zone(), me);
            });
          EXPECT_TRUE(vm_->fault(M_WAITOK));
          if (i % 3 == 0) vm_->unmap_one();
        }
      });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << o.title << o.report;
    EXPECT_EQ(intr_got, 2 * 2 * 6);  // memory is plentiful: none may fail
    ExpectCleanTeardown(rt);
    TearDown();
    SetUp();
  }
}

TEST_P(ConsumersTest, CrossCpuFrees) {
  for (uint64_t seed = 1; seed <= 6; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    InitPages(4096, 64, 16, 128);
    kenv::RuntimeConfig rc;
    rc.ncpus = 3;
    rc.seed = seed;
    rc.pct_depth = 5;
    kenv::Runtime rt(rc);
    ASSERT_TRUE(rt.run_on_cpu0([&] { MakeVm(); }).ok());
    bool done = false;
    rt.spawn(0, "faulter", [&] {
      for (int i = 0; i < 800; i++) EXPECT_TRUE(vm_->fault(M_WAITOK));
      done = true;
    });
    for (int cpu = 1; cpu < 3; cpu++)
      rt.spawn(cpu, "unmapper", [&] {
        while (!done || vm_->mapped_pages() > 0)
          if (!vm_->unmap_one()) kenv::cpu_spinwait();
      });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << o.title << o.report;
    EXPECT_EQ(vm_->stats().unmaps, 800u);
    ExpectCleanTeardown(rt);
    TearDown();
    SetUp();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Backends, ConsumersTest,
    ::testing::Values(
        Config{"kmalloc_obj", VmMode::kReserved, true, nullptr},
        Config{"zalloc", VmMode::kZalloc, true, nullptr},
        Config{"kmalloc_obj", VmMode::kNaive, false,
               "slabfuzz: panic: vm_page_alloc: PV ENTRY waits for pages before the VM is up"},
        Config{"kmalloc", VmMode::kNaive, false,
               "slabfuzz: panic: vm_page_alloc: kmalloc-N waits for pages before the VM is up"},
        Config{"objcache", VmMode::kNaive, false,
               "slabfuzz: panic: vm_page_alloc: kmalloc-N waits for pages before the VM is up"}),
    ConfigName);

}  // namespace
}  // namespace slabfuzz
