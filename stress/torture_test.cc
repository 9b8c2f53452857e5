// torture_test.cc - a short run of every scenario (the long ones are separate
// commands): each must finish with every invariant held.
#include "stress/torture.h"

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

TEST_P(TortureScenario, ShortRunHoldsEveryInvariant) {
  TortureOptions o;
  o.backend = GetParam().backend;
  o.scenario = GetParam().scenario;
  o.cpus = 2;
  o.threads = o.scenario == "migrate" ? 5 : 3;
  o.duration_s = o.backend == "kmalloc_obj" ? 0.6 : 0.4;
  o.max_ops = 60000;
  o.seed = 7;
  o.budget_pages = 8192;
  ASSERT_EQ(torture_check_options(o), "");
  TortureResult r = run_torture(o);
  ASSERT_TRUE(r.ok) << torture_summary(o, r);
  EXPECT_GT(r.ops, 100u);
  if (o.scenario == "migrate") EXPECT_GT(r.migrations, 0u);
  if (o.scenario == "interrupts") EXPECT_GT(r.interrupts, 0u);
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
