// torture.h - rcutorture-style stress scenarios on the threaded runtime: real threads
// at full speed over virtual CPUs, against any backend, with the VM consumers, the
// pageout daemon and the poller running.
//
// Invariants checked while a scenario runs and at its end (a violation ends the run
// with a title "slabfuzz: <check>: <detail>" and a non-zero exit):
//  - every object's content, written at allocation, is intact when it is freed, by
//    whichever thread frees it (corruption);
//  - no two live objects overlap (checked by content: a shared object is overwritten);
//  - no object is handed out while it is live (double-allocation: a ring slot published
//    before it was written, a slab on two lists), checked against the set of live
//    objects at every allocation and free, by address;
//  - a system allocation (M_USE_RESERVE) fails only with no spare left
//    (reserve-guarantee; counted under concurrency, must be zero);
//  - at the end: every zone's own consistency check passes, nothing is live, and every
//    page is back in the page source (leak);
//  - the watchdog: no progress for watchdog_ms ends the run with the state of every
//    thread (watchdog).
#ifndef SLABFUZZ_STRESS_TORTURE_H_
#define SLABFUZZ_STRESS_TORTURE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace slabfuzz {

struct TortureOptions {
  std::string scenario = "percpu";
  std::string backend = "kmalloc_obj";
  int cpus = 2;
  int threads = 2;
  double duration_s = 5;
  uint64_t max_ops = 0;  // 0: no bound but the duration
  uint64_t seed = 1;
  int watchdog_ms = 10'000;
  size_t budget_pages = 16384;
  // The threaded runtime's delay injection at shared accesses (1 in N, 0: none).
  int delay_one_in = 512;
};

// The command line that runs these options again, as close as real threads allow.
std::string torture_command(const TortureOptions& o);

struct Percentiles {
  double p50 = 0, p99 = 0, p999 = 0, max = 0;  // nanoseconds
};

struct TortureResult {
  bool ok = true;
  std::string title;   // on failure
  std::string report;
  uint64_t ops = 0;
  double seconds = 0;
  std::vector<uint64_t> ops_per_cpu;
  Percentiles alloc_ns, free_ns;
  uint64_t reserve_dips = 0, refills_tried = 0, refills_failed = 0;
  uint64_t reserve_failures = 0;  // system allocations refused with spares left
  uint64_t pressure_cycles = 0, pages_paged_out = 0, swapins = 0, interrupts = 0, migrations = 0;
};

const std::vector<std::string>& torture_scenarios();
// Validates the options; "" if they are good, else what is wrong.
std::string torture_check_options(const TortureOptions& o);
TortureResult run_torture(const TortureOptions& o);
// The human-readable report and the last line a script reads.
std::string torture_summary(const TortureOptions& o, const TortureResult& r);

}  // namespace slabfuzz

#endif  // SLABFUZZ_STRESS_TORTURE_H_
