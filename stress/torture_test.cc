// torture_test.cc - a short run of every scenario (the long ones are separate
// commands): each must finish with every invariant held. Each runs in a process of
// its own (a death test that must exit 0), so that one that aborts - every violated
// invariant does, on real threads - fails its own case, with its title, and not the
// whole binary.
#include "stress/torture.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "allocator/backend/backend.h"

#include "gtest/gtest.h"

namespace slabfuzz {
namespace {

struct Case {
  std::string backend, scenario;
};

class TortureScenario : public ::testing::TestWithParam<Case> {};

// The child's side: 0 if the run held, else its summary and 1.
int RunCase(const Case& c);

TEST_P(TortureScenario, ShortRunHoldsEveryInvariant) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(exit(RunCase(GetParam())), ::testing::ExitedWithCode(0), "");
}

int RunCase(const Case& c) {
  TortureOptions o;
  o.backend = c.backend;
  o.scenario = c.scenario;
  o.cpus = 2;
  o.threads = o.scenario == "migrate" ? 5 : 3;
  o.duration_s = o.backend == "kmalloc_obj" ? 0.6 : 0.4;
  o.max_ops = 60000;
  o.seed = 7;
  o.budget_pages = 8192;
  if (std::string e = torture_check_options(o); !e.empty()) {
    fprintf(stderr, "options: %s\n", e.c_str());
    return 1;
  }
  TortureResult r = run_torture(o);
  const char* wrong = !r.ok                                            ? "failed"
                      : r.ops <= 100                                   ? "too few operations"
                      : o.scenario == "migrate" && r.migrations == 0   ? "no migration"
                      : o.scenario == "interrupts" && r.interrupts == 0 ? "no interrupt"
                                                                        : nullptr;
  if (wrong == nullptr) return 0;
  fprintf(stderr, "%s\n%s", wrong, torture_summary(o, r).c_str());
  return 1;
}

// Every scenario on every backend, but pageout on the backends with neither boot
// memory nor spare slabs (kmalloc, objcache): there the pageout daemon blocks for a
// slab it can never get, as naive kmalloc_obj does - the deadlock consumers_test
// asserts on the deterministic runtime.
std::vector<Case> Cases() {
  std::vector<Case> out;
  for (const std::string& b : backend_names())
    for (const std::string& sc : torture_scenarios())
      if (!(sc == "pageout" && (b == "kmalloc" || b == "objcache"))) out.push_back({b, sc});
  return out;
}

INSTANTIATE_TEST_SUITE_P(All, TortureScenario, ::testing::ValuesIn(Cases()),
                         [](const auto& info) {
                           std::string n = info.param.backend + "_" + info.param.scenario;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(TortureOptions, BadOptionsAreRejected) {
  TortureOptions o;
  o.scenario = "nap";
  EXPECT_NE(torture_check_options(o).find("unknown scenario"), std::string::npos);
  o.scenario = "percpu";
  o.cpus = 0;
  EXPECT_NE(torture_check_options(o), "");
  o.cpus = 2;
  o.backend = "slob";
  EXPECT_NE(torture_check_options(o).find("unknown backend"), std::string::npos);
}

}  // namespace
}  // namespace slabfuzz
