// kenv_bench.cc - the cost of the deterministic runtime's fiber switch and of an
// uncontended crit_enter()/crit_exit() pair. Run in the perf configuration:
//   bazel run --config=perf //allocator/kenv:kenv_bench
#include <benchmark/benchmark.h>

#include "allocator/kenv/fiber.h"
#include "allocator/kenv/kenv.h"

namespace {

kenv::Fiber* g_main;
kenv::Fiber* g_other;

void PingPong(void*) {
  for (;;) kenv::Fiber::Switch(g_other, g_main);
}

// One iteration is a round trip: two switches.
void BM_FiberSwitchRoundTrip(benchmark::State& state) {
  auto main = kenv::Fiber::Main();
  kenv::Fiber other(&PingPong, nullptr, 64 * 1024);
  g_main = main.get();
  g_other = &other;
  for (auto _ : state) kenv::Fiber::Switch(g_main, g_other);
}
BENCHMARK(BM_FiberSwitchRoundTrip);

void BM_CritEnterExit(benchmark::State& state) {
  kenv::globaldata gd{};
  kenv::thread td{};
  td.td_gd = &gd;
  td.td_name = "bench";
  kenv::curthread_tls = &td;
  for (auto _ : state) {
    kenv::crit_enter();
    benchmark::ClobberMemory();
    kenv::crit_exit();
  }
  kenv::curthread_tls = nullptr;
}
BENCHMARK(BM_CritEnterExit);

}  // namespace

BENCHMARK_MAIN();
