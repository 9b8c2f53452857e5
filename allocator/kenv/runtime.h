// runtime.h - the driver's side of the simulated kernel: start CPUs and kernel
// threads, post interrupts, run to completion, learn how it ended.
//
// One interface, two implementations chosen at link time:
//  - //allocator/kenv:det       every thread is a cooperative fiber on one OS thread; a
//                               PCT scheduler fed by a seed or by fuzz bytes picks who runs
//                               at each preemption point. Same decisions, same
//                               interleaving, same result.
//  - //allocator/kenv:threaded  M OS threads over N virtual CPUs; a thread owns a CPU
//                               while it runs kernel code and may migrate at preemption
//                               points outside critical sections; a watchdog reports a
//                               run that makes no progress.
//
// Invariants: run() returns only when every non-daemon thread has finished, or the run
// has failed (panic, deadlock, watchdog); on failure Outcome::title is a stable one-line
// title and Outcome::report names every thread and what it waits for. A Runtime is the
// only one alive in its process while it exists.
#ifndef SLABFUZZ_ALLOCATOR_KENV_RUNTIME_H_
#define SLABFUZZ_ALLOCATOR_KENV_RUNTIME_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "allocator/kenv/kenv.h"

namespace kenv {

struct RuntimeConfig {
  int ncpus = 2;
  // Deterministic runtime: scheduling decisions. Bytes are consumed first, then a
  // PRNG seeded with `seed`.
  uint64_t seed = 0;
  std::span<const uint8_t> decision_bytes;
  int pct_depth = 3;          // PCT: d-1 priority change points
  int pct_horizon = 2000;     // PCT: steps over which change points are drawn
  // PCT change points inside the windows between preemption points: each is drawn as a
  // step in the horizon and an offset of 0-255 communication accesses past it
  // (log-uniform; accesses to what another thread accessed last), and lowers the
  // priority of whoever makes that access, which is switched out right after it (det;
  // see "Shared accesses" in det_runtime.cc). 0: only the d-1 change points above.
  int pct_races = 0;
  int pct_access_horizon = 0;  // steps over which those are drawn (0: pct_horizon)
  uint64_t max_steps = 2'000'000;  // a run longer than this is a livelock
  // So many shared accesses with no preemption point or busy-wait between them is a
  // livelock too: a loop that has none (a walk of a list that became a cycle) (det).
  uint64_t max_step_accesses = 4'000'000;
  bool record_trace = false;
  // Threaded runtime.
  int watchdog_ms = 10'000;   // no progress for this long: report and fail
  int migrate_one_in = 64;    // at a preemption point, migrate with chance 1/N
  int delay_one_in = 0;       // at a shared access, wait a little with chance ~1/N (0: never)
};

struct Outcome {
  enum Kind { kOk, kPanic, kDeadlock, kLivelock, kWatchdog };
  Kind kind = kOk;
  std::string title;   // "slabfuzz: <check>: <detail>" on failure
  std::string report;  // every thread and what it waits for
  uint64_t steps = 0;  // preemption points passed
  uint64_t switches = 0;
  uint64_t accesses = 0;     // shared accesses of instrumented code (det)
  uint64_t alias_pairs = 0;  // a thread's access to what another thread stored last
  uint64_t new_alias_pairs = 0;  // pairs of sites this process had not seen before
  bool ok() const { return kind == kOk; }
};

const char* outcome_kind_name(Outcome::Kind k);

class Runtime {
 public:
  explicit Runtime(const RuntimeConfig& config);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // A thread bound to `cpu` (det) or starting on it (threaded). Daemons (pageout,
  // poller) loop forever; the run ends when every non-daemon thread has returned.
  void spawn(int cpu, std::string name, std::function<void()> fn, bool daemon = false);
  // Run fn as an interrupt on `cpu` at its next preemption point outside a critical
  // section. Callable from drivers before run() and from kernel code during it.
  void post_interrupt(int cpu, std::function<void()> fn);
  // Called by a thread of the run: it is preempted at its n-th preemption point from
  // here, as at a PCT change point (its priority drops below every other thread's), so
  // that a program can place a preemption where it wants one (det; threaded: ignored,
  // real threads are preempted anywhere). With accesses > 0 the preemption falls that
  // many shared accesses after the n-th point instead: inside the window that follows
  // it, where no preemption point is.
  void preempt_after(int n, int accesses = 0);
  // A timer interrupt: fn runs as an interrupt on `cpu` once that CPU has passed n more
  // preemption points (or when nothing else can run); delivered as post_interrupt()'s
  // are, so one that falls due inside a critical section runs when it is left (det;
  // threaded: posted at once).
  void post_interrupt_after(int cpu, int n, std::function<void()> fn);
  // The same, counted in shared accesses: fn runs as an interrupt on `cpu` at that CPU's
  // accesses-th shared access from here, at any instruction of the code under test that
  // reaches memory another CPU can (or when nothing else can run); one that falls due
  // inside a critical section waits for its crit_exit, as a hardware interrupt does
  // (det; threaded: posted at once).
  void post_interrupt_at_access(int cpu, int accesses, std::function<void()> fn);
  Outcome run();

  // The event trace of the last run (det, with record_trace): one line per switch,
  // interrupt and block; the determinism tests compare it.
  const std::vector<std::string>& trace() const;
  // Runs fn as a kernel thread on CPU 0 outside any run: for set-up and teardown code
  // that must call kernel primitives. Returns the outcome (a panic is caught).
  Outcome run_on_cpu0(std::function<void()> fn);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The runtime in which the calling code runs, or nullptr.
Runtime* current_runtime();

// How to reproduce this run, printed after the title of a failure (threaded: a panic,
// a fatal signal; the deterministic runtime's runs reproduce from their input).
void set_failure_note(const std::string& note);

// Sets up the boot phase for a new kernel (drivers do this before run()).
void boot_reset(boot_phase p);

}  // namespace kenv

#endif  // SLABFUZZ_ALLOCATOR_KENV_RUNTIME_H_
