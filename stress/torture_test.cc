// torture_test.cc - a short run of every scenario (the long ones are separate
// commands): each must finish with every invariant held.
#include "stress/torture.h"

#include "gtest/gtest.h"

namespace slabfuzz {
namespace {

class TortureScenario : public ::testing::TestWithParam<std::string> {};

TEST_P(TortureScenario, ShortRunHoldsEveryInvariant) {
  TortureOptions o;
  o.scenario = GetParam();
  o.cpus = 2;
  o.threads = GetParam() == "migrate" ? 5 : 3;
  o.duration_s = 0.6;
  o.max_ops = 60000;
  o.seed = 7;
  o.budget_pages = 8192;
  ASSERT_EQ(torture_check_options(o), "");
  TortureResult r = run_torture(o);
  ASSERT_TRUE(r.ok) << torture_summary(o, r);
  EXPECT_GT(r.ops, 100u);
  if (GetParam() == "migrate") EXPECT_GT(r.migrations, 0u);
  if (GetParam() == "interrupts") EXPECT_GT(r.interrupts, 0u);
}

INSTANTIATE_TEST_SUITE_P(All, TortureScenario, ::testing::ValuesIn(torture_scenarios()),
                         [](const auto& info) {
                           std::string n = info.param;
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
