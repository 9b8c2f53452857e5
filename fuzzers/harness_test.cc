// harness_test.cc - the harness on the real allocator: runs are deterministic
// (same program, same interleaving, same result); random programs on the correct
// allocator never crash the harness nor report a finding; the known regressions end
// exactly as recorded (naive boot fails, naive pageout deadlocks, reserved survives).
#include "fuzzers/harness.h"

#include <dirent.h>

#include <fstream>
#include <iterator>
#include <string>

#include "allocator/backend/names.h"
#include "fuzzers/mutator.h"
#include "fuzzers/program.h"
#include "gtest/gtest.h"

namespace slabfuzz {
namespace {

HarnessOptions Reserved() {
  HarnessOptions o;
  o.target.backend = backend_index("kmalloc_obj");
  o.target.mode = VmMode::kReserved;
  o.target.min_reserve = 1;
  o.target.min_boot_slabs = 1;
  return o;
}

HarnessOptions Naive() {
  HarnessOptions o;
  o.target.backend = backend_index("kmalloc_obj");
  o.target.mode = VmMode::kNaive;
  return o;
}

TEST(Harness, SameProgramSameInterleavingSameResult) {
  Rng rng(11);
  for (int i = 0; i < 40; i++) {
    Program p = random_program(rng, 48);
    HarnessOptions o = Reserved();
    o.trace = true;
    RunResult a = run_program(p, o);
    RunResult b = run_program(p, o);
    EXPECT_EQ(a.ok, b.ok);
    EXPECT_EQ(a.title, b.title);
    EXPECT_EQ(a.trace, b.trace) << to_text(p);
    EXPECT_EQ(a.steps, b.steps);
  }
}

// Every operation of ops.h has its case in Exec::exec (one without ends the run with
// "harness: operation NAME has no case"), and a few objects live before it.
TEST(Harness, EveryOperationIsPerformed) {
  for (size_t i = 0; i < std::size(kOpSpecs); i++) {
    Program p;
    p.header.ncpus = 2;
    for (int k = 0; k < 4; k++) {
      Op alloc;
      alloc.code = OpCode::kAlloc;
      alloc.a = static_cast<uint8_t>(k);
      p.ops.push_back(alloc);
    }
    Op op;
    op.code = static_cast<OpCode>(i);
    p.ops.push_back(op);
    canonicalize(&p);
    RunResult r = run_program(p, Reserved());
    EXPECT_TRUE(r.ok) << kOpSpecs[i].name << ": " << r.title;
    EXPECT_EQ(r.title.find("has no case"), std::string::npos) << r.title;
  }
}

// A count is a count: count=N allocates N objects (0: none), as the text says.
TEST(Harness, CountNPerformsN) {
  for (const char* op : {"churn zone=TEST0", "reserve_chain zone=TEST0",
                         "interrupt target=0 zone=TEST0"}) {
    for (int n : {0, 1, 5, 16}) {
      std::string text = "config cpus=1 zones=64\ncpu0 " + std::string(op) +
                         " count=" + std::to_string(n) + "\n";
      std::string err;
      auto p = parse_text(text, &err);
      ASSERT_TRUE(p.has_value()) << err;
      RunResult r = run_program(*p, Reserved());
      ASSERT_TRUE(r.ok) << r.title;
      EXPECT_EQ(r.objects, static_cast<uint64_t>(n)) << text;
    }
  }
}

// A free names the operation that allocated its object: an unrelated operation
// inserted before it (an allocation in the same zone, here) does not change what it
// frees. The double free names the TEST1 object, and the allocator says so.
TEST(Harness, AnInsertedOperationDoesNotChangeWhatALaterFreeFrees) {
  std::string err;
  auto p = parse_text(
      "config cpus=1 zones=64,16384\n"
      "cpu0 alloc zone=TEST0\n"
      "cpu0 alloc zone=TEST1\n"
      "cpu0 alloc zone=TEST0\n"
      "cpu0 misuse kind=0 obj=@1\n",
      &err);
  ASSERT_TRUE(p.has_value()) << err;
  RunResult base = run_program(*p, Reserved());
  ASSERT_TRUE(base.expected_misuse) << base.title;
  EXPECT_NE(base.title.find("TEST1"), std::string::npos) << base.title;
  for (size_t at = 0; at <= 3; at++)
    for (uint8_t zone : {3, 4}) {
      Program q = *p;
      Op unrelated;
      unrelated.code = OpCode::kAlloc;
      unrelated.a = zone;
      insert_ops(&q, at, std::span<const Op>(&unrelated, 1));
      RunResult r = run_program(q, Reserved());
      EXPECT_TRUE(r.expected_misuse) << to_text(q);
      EXPECT_EQ(r.title, base.title) << to_text(q);
    }
}

TEST(Harness, SeedChangesTheInterleaving) {
  Rng rng(12);
  int differ = 0;
  for (int i = 0; i < 20; i++) {
    Program p = random_program(rng, 48);
    p.header.ncpus = 3;
    p.header.boot = BootMode::kRunning;
    canonicalize(&p);
    HarnessOptions o = Reserved();
    o.trace = true;
    RunResult a = run_program(p, o);
    p.header.seed ^= 0x5a5a5a5a;
    RunResult b = run_program(p, o);
    if (a.trace != b.trace) differ++;
  }
  EXPECT_GE(differ, 10);
}

// The correct allocator under random programs: no finding, no harness crash.
TEST(Harness, RandomProgramsOnTheCorrectAllocatorFindNothing) {
  Rng rng(13);
  for (int i = 0; i < 1500; i++) {
    std::vector<uint8_t> bytes(rng.below(16 + 8 * 64));
    for (uint8_t& x : bytes) x = static_cast<uint8_t>(rng.next());
    Program p = decode(bytes);
    RunResult r = run_program(p, Reserved());
    ASSERT_TRUE(r.ok) << crash_report(effective_program(p, Reserved().target), r);
  }
}

// Today's kernel under the same random programs: zalloc with its boot arrays and
// interrupt zones survives them too (the baseline the replacement is held to).
TEST(Harness, RandomProgramsOnZallocFindNothing) {
  HarnessOptions o{.target = zalloc_target()};
  Rng rng(14);
  for (int i = 0; i < 600; i++) {
    std::vector<uint8_t> bytes(rng.below(16 + 8 * 64));
    for (uint8_t& x : bytes) x = static_cast<uint8_t>(rng.next());
    Program p = decode(bytes);
    RunResult r = run_program(p, o);
    ASSERT_TRUE(r.ok) << crash_report(effective_program(p, o.target), r);
  }
}

struct Regression {
  std::string path, expect, target;
  Program program;
};

std::vector<Regression> LoadRegressions() {
  std::vector<Regression> out;
  const std::string dir = "corpora/regressions";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 4 || name.substr(name.size() - 4) != ".txt") continue;
    Regression r;
    r.path = dir + "/" + name;
    std::ifstream in(r.path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string line;
    std::istringstream lines(text);
    while (std::getline(lines, line)) {
      if (line.rfind("# expect: ", 0) == 0) r.expect = line.substr(10);
      if (line.rfind("# target: ", 0) == 0) r.target = line.substr(10);
    }
    std::string err;
    auto p = parse_text(text, &err);
    EXPECT_TRUE(p.has_value()) << r.path << ": " << err;
    if (p) r.program = *p;
    out.push_back(r);
  }
  closedir(d);
  return out;
}

TEST(Harness, RegressionsEndAsRecorded) {
  auto regs = LoadRegressions();
  ASSERT_GE(regs.size(), 3u);
  for (const Regression& r : regs) {
    SCOPED_TRACE(r.path);
    ASSERT_TRUE(r.target == "naive" || r.target == "reserved" || r.target == "zalloc" ||
                r.target == "conversion" || r.target == "conversion_naive");
    HarnessOptions o = r.target.find("naive") != std::string::npos ? Naive() : Reserved();
    if (r.target == "zalloc") o = HarnessOptions{.target = zalloc_target()};
    o.target.compare_with_zalloc = r.target.rfind("conversion", 0) == 0;
    // Ten times out of ten, the same title.
    for (int k = 0; k < 10; k++) {
      RunResult res = run_program(r.program, o);
      EXPECT_EQ(res.ok ? "ok" : res.title, r.expect) << res.report;
    }
  }
}

// The conversion proof's verdicts: the promise a title breaks, or none (the allocator's
// own fault); a program zalloc deadlocks on and reserved kmalloc_obj survives is the
// reverse case, counted and not a crash; a broken promise zalloc kept is one.
TEST(Harness, ConversionComparesPromises) {
  EXPECT_EQ(broken_promise("slabfuzz: panic: vm_page_alloc: PV ENTRY waits for pages before "
                           "the VM is up"),
            "boot completes");
  EXPECT_EQ(broken_promise("slabfuzz: deadlock: every thread waits: pagedaemon (vmwait)"),
            "the pageout daemon makes progress");
  EXPECT_EQ(broken_promise("slabfuzz: deadlock: every thread waits: N CPU threads (vmwait)"),
            "no deadlock");
  EXPECT_EQ(broken_promise("slabfuzz: nowait-blocked: a no-wait allocation reached tsleep"),
            "a no-wait allocation never sleeps");
  EXPECT_EQ(broken_promise("slabfuzz: double-allocation: zone TEST0: ADDR"), "");
  auto run = [](const char* path, bool naive) {
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string err;
    auto p = parse_text(text, &err);
    EXPECT_TRUE(p.has_value()) << path << ": " << err;
    HarnessOptions o = naive ? Naive() : Reserved();
    o.target.compare_with_zalloc = true;
    return run_program(p.value_or(Program{}), o);
  };
  RunResult rev = run("corpora/regressions/conversion_reverse_zalloc_deadlocks.txt", false);
  EXPECT_TRUE(rev.ok) << rev.title;
  EXPECT_TRUE(rev.reverse);
  ASSERT_TRUE(rev.zalloc_title.has_value());
  EXPECT_EQ(rev.zalloc_title->rfind("slabfuzz: deadlock: ", 0), 0u) << *rev.zalloc_title;
  RunResult boot = run("corpora/regressions/conversion_naive_boot.txt", true);
  EXPECT_FALSE(boot.ok);
  EXPECT_FALSE(boot.reverse);
  EXPECT_EQ(boot.zalloc_title, "");
  EXPECT_NE(boot.report.find("zalloc: ran clean"), std::string::npos) << boot.report;
}

}  // namespace
}  // namespace slabfuzz
