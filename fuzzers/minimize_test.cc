// minimize_test.cc - the minimizer on the real allocator: the naive conversion's boot
// failure and pageout deadlock, buried in unrelated operations and a busy header,
// come out small, with the same title, 1-minimal (no single remaining operation can go)
// and the same every time; a clean program is reported as such.
#include "fuzzers/minimize.h"

#include <string>

#include "allocator/backend/names.h"
#include "fuzzers/program.h"
#include "gtest/gtest.h"

namespace slabfuzz {
namespace {

HarnessOptions Naive() {
  HarnessOptions o;
  o.target.backend = backend_index("kmalloc_obj");
  o.target.mode = VmMode::kNaive;
  return o;
}

Program Parse(const std::string& text) {
  std::string err;
  auto p = parse_text(text, &err);
  EXPECT_TRUE(p.has_value()) << err;
  return p.value_or(Program{});
}

// Problem (A) behind a busy header and test-zone work that has nothing to do with it.
const char kBootFails[] =
    "config backend=0 mode=naive cpus=4 budget=40 boot_slabs=0 reserve=0 boot=early "
    "seed=0x12345678 depth=5 zones=64,256,4096 races=3 tick=5 tick_zone=3\n"
    "cpu1 alloc zone=3 flags=M_WAITOK\n"
    "cpu2 alloc zone=4 flags=M_NOWAIT\n"
    "cpu3 churn zone=5 count=7\n"
    "cpu1 free obj=@0\n"
    "cpu0 preempt after=2 accesses=7\n"
    "cpu2 alloc zone=3 flags=M_WAITOK|M_ZERO\n"
    "cpu3 free_some zone=3 count=3\n"
    "cpu1 boot_next\n"
    "cpu2 alloc zone=0 flags=M_WAITOK\n"
    "cpu0 alloc zone=4 flags=M_WAITOK\n"
    "cpu3 remote_free obj=@8\n"
    "cpu1 poll\n";

// Problem (B) with pressure and faults spread over CPUs, and noise between them.
const char kPageoutDeadlock[] =
    "config backend=0 mode=naive cpus=3 budget=0 boot_slabs=0 reserve=0 boot=running "
    "seed=0x00000007 depth=4 zones=64,640\n"
    "cpu1 alloc zone=3 flags=M_WAITOK\n"
    "cpu0 pressure pages=1000\n"
    "cpu2 churn zone=4 count=4\n"
    "cpu0 vm_fault flags=M_WAITOK\n"
    "cpu1 vm_fault flags=M_WAITOK\n"
    "cpu2 free obj=@0\n"
    "cpu0 vm_fault flags=M_WAITOK\n"
    "cpu1 vm_fault flags=M_WAITOK\n"
    "cpu0 vm_fault flags=M_WAITOK\n"
    "cpu2 alloc zone=4 flags=M_NOWAIT\n"
    "cpu1 vm_fault flags=M_WAITOK\n"
    "cpu0 vm_fault flags=M_WAITOK\n"
    "cpu1 vm_fault flags=M_WAITOK\n"
    "cpu0 vm_fault flags=M_WAITOK\n"
    "cpu1 vm_fault flags=M_WAITOK\n";

// No remaining operation can be removed without changing the title.
void ExpectOneMinimal(const MinimizeResult& r, const HarnessOptions& o) {
  for (size_t i = 0; i < r.program.ops.size(); i++) {
    Program less = r.program;
    less.ops.erase(less.ops.begin() + static_cast<long>(i));
    EXPECT_NE(run_title(less, o, 30), r.title) << "operation " << i << " is not needed:\n"
                                               << to_text(r.program);
  }
}

TEST(Minimize, BootFailureComesOutSmallWithItsTitle) {
  HarnessOptions o = Naive();
  Program p = Parse(kBootFails);
  std::string title = run_title(p, o, 30);
  ASSERT_EQ(title, "slabfuzz: panic: vm_page_alloc: PV ENTRY waits for pages before the VM is up");
  MinimizeResult r = minimize(p, o, MinimizeOptions{});
  ASSERT_TRUE(r.crashed);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.title, title);
  EXPECT_EQ(run_title(r.program, o, 30), title);
  EXPECT_EQ(r.ops_before, 12u);
  EXPECT_LE(r.program.ops.size(), 2u) << to_text(r.program);
  EXPECT_EQ(r.program.header.ncpus, 1) << to_text(r.program);
  EXPECT_EQ(r.program.header.races, 0);
  EXPECT_EQ(r.program.header.tick, 0);
  EXPECT_EQ(r.program.header.pct_depth, 1);
  ExpectOneMinimal(r, o);
}

TEST(Minimize, DeadlockKeepsItsTitleAndIsDeterministic) {
  HarnessOptions o = Naive();
  Program p = Parse(kPageoutDeadlock);
  std::string title = run_title(p, o, 30);
  ASSERT_EQ(title.rfind("slabfuzz: deadlock:", 0), 0u) << title;
  MinimizeResult a = minimize(p, o, MinimizeOptions{});
  MinimizeResult b = minimize(p, o, MinimizeOptions{});
  ASSERT_TRUE(a.crashed);
  EXPECT_EQ(a.title, title);
  EXPECT_LT(a.program.ops.size(), p.ops.size()) << to_text(a.program);
  EXPECT_EQ(a.program, b.program);
  EXPECT_EQ(a.runs, b.runs);
  ExpectOneMinimal(a, o);
}

TEST(Minimize, CleanProgramIsNotACrash) {
  HarnessOptions o = Naive();
  Program p = Parse(
      "config backend=0 mode=naive cpus=2 budget=16 boot_slabs=1 reserve=0 boot=running "
      "seed=0x00000001 depth=2 zones=64\n"
      "cpu0 alloc zone=3 flags=M_WAITOK\n"
      "cpu1 free obj=@0\n");
  MinimizeResult r = minimize(p, o, MinimizeOptions{});
  EXPECT_FALSE(r.crashed);
  EXPECT_EQ(r.runs, 1);
  EXPECT_TRUE(r.title.empty());
}

TEST(Minimize, TimeLimitKeepsTheBestSoFar) {
  HarnessOptions o = Naive();
  Program p = Parse(kPageoutDeadlock);
  MinimizeOptions mo;
  mo.max_seconds = 1e-9;  // every candidate comes too late
  MinimizeResult r = minimize(p, o, mo);
  ASSERT_TRUE(r.crashed);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.runs, 1);
  EXPECT_EQ(r.program, effective_program(p, o.target));
}

// The search itself, with a title given by a model of a race instead of a run: a
// directed preemption of cpu0 posted with after=N falls before the N-th operation of
// cpu0 that follows it (each passes one preemption point), and the "race" is hit when
// it falls before the SWAPMETA allocation. The fillers between them (frees of nothing,
// polls) are ticks of that clock: removing one alone moves the preemption off the
// window, so only removal with the schedule moved along (after lowered) takes them out.
TEST(Minimize, RemovalMovesTheScheduleAlong) {
  const std::string kTitle = "slabfuzz: model: preempted before the SWAPMETA allocation";
  auto race = [&](const Program& p) -> std::string {
    for (size_t i = 0; i < p.ops.size(); i++) {
      if (p.ops[i].code != OpCode::kPreempt || p.ops[i].cpu != 0) continue;
      size_t passed = 0;
      for (size_t j = i + 1; j < p.ops.size(); j++) {
        if (p.ops[j].cpu != 0 || is_schedule_op(p.ops[j])) continue;
        if (passed++ == p.ops[i].b)
          return p.ops[j].code == OpCode::kAlloc && p.ops[j].a == 2 ? kTitle : "";
      }
    }
    return "";
  };
  Program p = Parse(
      "config backend=0 mode=naive cpus=2 budget=0 boot_slabs=0 reserve=0 boot=running "
      "seed=0x00000001 depth=1 zones=64\n"
      "cpu0 preempt after=4 accesses=0\n"
      "cpu0 poll\n"
      "cpu1 alloc zone=PV_ENTRY flags=M_WAITOK\n"
      "cpu0 relief pages=0\n"
      "cpu0 poll\n"
      "cpu0 relief pages=0\n"
      "cpu0 alloc zone=SWAPMETA flags=M_NOWAIT\n"
      "cpu0 poll\n");
  ASSERT_EQ(race(p), kTitle);
  MinimizeOptions mo;
  mo.title_of = race;
  MinimizeResult r = minimize(p, Naive(), mo);
  ASSERT_TRUE(r.crashed);
  EXPECT_EQ(r.title, kTitle);
  EXPECT_EQ(race(r.program), kTitle);
  ASSERT_EQ(r.program.ops.size(), 2u) << to_text(r.program);
  EXPECT_EQ(r.program.ops[0].code, OpCode::kPreempt);
  EXPECT_EQ(r.program.ops[0].b, 0) << to_text(r.program);
  EXPECT_EQ(r.program.ops[1].code, OpCode::kAlloc);
}

}  // namespace
}  // namespace slabfuzz
