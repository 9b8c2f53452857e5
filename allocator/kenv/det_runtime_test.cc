// det_runtime_test.cc - the deterministic runtime's guarantees: determinism,
// critical sections against interrupts and same-CPU preemption, spinlocks, and the
// errors it detects (deadlock, sleeping in a critical section, a spinlock taken twice,
// crit_exit without crit_enter); interleavings at the shared accesses of instrumented
// code (access_probe), their alias pairs, and unwinding a thread switched at one.
#include <algorithm>
#include <mutex>
#include <atomic>
#include <string>
#include <vector>

#include "allocator/kenv/access_probe.h"
#include "allocator/kenv/kenv.h"
#include "allocator/kenv/runtime.h"
#include "gtest/gtest.h"

namespace kenv {
namespace {

RuntimeConfig Config(int ncpus, uint64_t seed) {
  RuntimeConfig c;
  c.ncpus = ncpus;
  c.seed = seed;
  c.pct_depth = 4;
  c.pct_horizon = 200;
  c.record_trace = true;
  return c;
}

// Three threads on two CPUs incrementing shared state at preemption points, plus an
// interrupt; returns the trace.
std::vector<std::string> RunScenario(uint64_t seed, std::string* order) {
  Runtime rt(Config(2, seed));
  for (int i = 0; i < 3; i++) {
    rt.spawn(i % 2, "t" + std::to_string(i), [i, order] {
      for (int k = 0; k < 20; k++) {
        *order += static_cast<char>('a' + i);
        preempt_point();
      }
    });
  }
  rt.post_interrupt(1, [order] { *order += 'I'; });
  Outcome o = rt.run();
  EXPECT_TRUE(o.ok()) << o.title;
  return rt.trace();
}

TEST(DetRuntime, SameSeedSameInterleaving) {
  std::string o1, o2;
  auto t1 = RunScenario(42, &o1);
  auto t2 = RunScenario(42, &o2);
  EXPECT_EQ(t1, t2);
  EXPECT_EQ(o1, o2);
  EXPECT_EQ(o1.size(), 61u);
}

TEST(DetRuntime, DifferentSeedsDifferentInterleavings) {
  std::string base;
  RunScenario(1, &base);
  int different = 0;
  for (uint64_t seed = 2; seed < 12; seed++) {
    std::string o;
    RunScenario(seed, &o);
    if (o != base) different++;
  }
  EXPECT_GE(different, 5);
}

TEST(DetRuntime, DecisionBytesSteerTheSchedule) {
  std::vector<std::string> orders;
  for (uint8_t b = 0; b < 8; b++) {
    std::vector<uint8_t> bytes(64, b);
    bytes[0] = static_cast<uint8_t>(b * 37);
    RuntimeConfig c = Config(2, 7);
    c.decision_bytes = bytes;
    Runtime rt(c);
    std::string order;
    for (int i = 0; i < 2; i++)
      rt.spawn(i, "t", [i, &order] {
        for (int k = 0; k < 10; k++) {
          order += static_cast<char>('a' + i);
          preempt_point();
        }
      });
    ASSERT_TRUE(rt.run().ok());
    orders.push_back(order);
  }
  std::sort(orders.begin(), orders.end());
  EXPECT_GT(std::unique(orders.begin(), orders.end()) - orders.begin(), 1);
}

TEST(DetRuntime, InterruptNeverRunsInsideACriticalSection) {
  for (uint64_t seed = 0; seed < 50; seed++) {
    Runtime rt(Config(1, seed));
    bool in_crit = false;
    bool violated = false;
    int ran = 0;
    rt.spawn(0, "worker", [&] {
      for (int k = 0; k < 10; k++) {
        crit_enter();
        in_crit = true;
        preempt_point();
        preempt_point();
        in_crit = false;
        crit_exit();
        preempt_point();
      }
    });
    for (int i = 0; i < 5; i++)
      rt.post_interrupt(0, [&] {
        if (in_crit) violated = true;
        EXPECT_EQ(curthread()->td_intr, 1);
        ran++;
      });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << o.title;
    EXPECT_FALSE(violated) << "seed " << seed;
    EXPECT_EQ(ran, 5);
  }
}

// A timer interrupt runs once its CPU has passed the given number of preemption
// points; one that falls due inside a critical section runs when the section is left.
TEST(DetRuntime, TimerFiresAfterItsPreemptionPointsAndWaitsOutCriticalSections) {
  for (int after : {1, 3, 6}) {
    Runtime rt(Config(1, 7));
    int points = 0, fired_at = -1;
    bool in_crit = false, inside = false;
    rt.spawn(0, "t", [&] {
      rt.post_interrupt_after(0, after, [&] {
        fired_at = points;
        inside = in_crit;
      });
      for (int i = 0; i < 10; i++) {
        if (i == 4) {
          crit_enter();
          in_crit = true;
        }
        preempt_point();
        points++;
        if (i == 5) {
          in_crit = false;
          crit_exit();
        }
      }
    });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << o.title;
    EXPECT_FALSE(inside);
    // Due at the after-th point, where after - 1 have been counted; points 5 and 6
    // (i = 4, 5) are inside the critical section, so a timer due there runs at
    // crit_exit, once six are counted.
    EXPECT_EQ(fired_at, after == 5 || after == 6 ? 6 : after - 1) << "after " << after;
  }
}

TEST(DetRuntime, CriticalSectionExcludesSameCpuThreadsButNotOtherCpus) {
  int other_cpu_ran_inside = 0;
  for (uint64_t seed = 0; seed < 50; seed++) {
    Runtime rt(Config(2, seed));
    bool in_crit = false;
    bool same_cpu_violation = false;
    rt.spawn(0, "holder", [&] {
      crit_enter();
      in_crit = true;
      for (int k = 0; k < 10; k++) preempt_point();
      in_crit = false;
      crit_exit();
    });
    rt.spawn(0, "same", [&] {
      for (int k = 0; k < 10; k++) {
        if (in_crit) same_cpu_violation = true;
        preempt_point();
      }
    });
    rt.spawn(1, "other", [&] {
      for (int k = 0; k < 10; k++) {
        if (in_crit) other_cpu_ran_inside++;
        preempt_point();
      }
    });
    ASSERT_TRUE(rt.run().ok());
    EXPECT_FALSE(same_cpu_violation) << "seed " << seed;
  }
  EXPECT_GT(other_cpu_ran_inside, 0);
}

TEST(DetRuntime, SpinlockIsMutualExclusionAcrossCpus) {
  for (uint64_t seed = 0; seed < 30; seed++) {
    Runtime rt(Config(3, seed));
    spinlock s;
    spin_init(&s, "test");
    int inside = 0, max_inside = 0, total = 0;
    for (int c = 0; c < 3; c++)
      rt.spawn(c, "t", [&] {
        for (int k = 0; k < 10; k++) {
          spin_lock(&s);
          inside++;
          max_inside = std::max(max_inside, inside);
          preempt_point();
          total++;
          inside--;
          spin_unlock(&s);
          preempt_point();
        }
      });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << o.title << o.report;
    EXPECT_EQ(max_inside, 1);
    EXPECT_EQ(total, 30);
  }
}

TEST(DetRuntime, SleepWakeup) {
  Runtime rt(Config(2, 3));
  int chan = 0;
  bool ready = false;
  bool seen = false;
  rt.spawn(0, "sleeper", [&] {
    while (!ready) tsleep(&chan, "test", 0);
    seen = true;
  });
  rt.spawn(1, "waker", [&] {
    preempt_point();
    ready = true;
    wakeup(&chan);
  });
  ASSERT_TRUE(rt.run().ok());
  EXPECT_TRUE(seen);
}

TEST(DetRuntime, DeadlockIsReportedNotHung) {
  Runtime rt(Config(2, 5));
  int a = 0, b = 0;
  rt.spawn(0, "first", [&] { tsleep(&a, "wait-a", 0); });
  rt.spawn(1, "second", [&] { tsleep(&b, "wait-b", 0); });
  Outcome o = rt.run();
  EXPECT_EQ(o.kind, Outcome::kDeadlock);
  EXPECT_EQ(o.title.rfind("slabfuzz: deadlock: ", 0), 0u) << o.title;
  // The shape of the wait in the title (threads counted per channel), who in the report.
  EXPECT_EQ(o.title,
            "slabfuzz: deadlock: every thread waits: N CPU threads (wait-a), N CPU threads (wait-b)");
  EXPECT_NE(o.report.find("second"), std::string::npos);
}

// One deadlock, one title: whichever CPUs wait, and however many, the title is the same.
TEST(DetRuntime, DeadlockTitleNamesTheShapeNotTheCpus) {
  auto title = [](std::vector<int> cpus) {
    Runtime rt(Config(4, 5));
    int chan = 0;
    for (int cpu : cpus)
      rt.spawn(cpu, "cpu" + std::to_string(cpu), [&] { tsleep(&chan, "vmwait", 0); });
    return rt.run().title;
  };
  EXPECT_EQ(title({0}), "slabfuzz: deadlock: every thread waits: N CPU threads (vmwait)");
  EXPECT_EQ(title({2, 3}), title({0}));
  EXPECT_EQ(title({1, 2, 3}), title({0}));
}

// A daemon serving wakeups (looking at kthread_should_stop() after its idle wait, or
// not) on the last CPU, and a client on cpu0 that wakes it once.
Outcome RunDaemonAndClient(int ncpus, bool looks, bool* returned, int* served) {
  Runtime rt(Config(ncpus, 5));
  int chan = 0;
  rt.spawn(ncpus - 1, "daemon", [&] {
    for (;;) {
      tsleep_idle(&chan, "idle", 0);
      if (looks && kthread_should_stop()) break;
      (*served)++;
    }
    *returned = true;
  }, /*daemon=*/true);
  rt.spawn(0, "client", [&] {
    wakeup(&chan);
    preempt_point();
  });
  return rt.run();
}

// A daemon that does not look is unwound in its next idle wait.
TEST(DetRuntime, DaemonsDoNotKeepARunAlive) {
  bool returned = false;
  int served = 0;
  Outcome o = RunDaemonAndClient(1, /*looks=*/false, &returned, &served);
  EXPECT_TRUE(o.ok()) << o.title;
  EXPECT_FALSE(returned);
}

// At the end of a run a daemon in its idle wait is asked to stop and returns by
// itself: what follows its loop runs (no unwinding).
TEST(DetRuntime, DaemonAskedToStopReturnsByItself) {
  bool returned = false;
  int served = 0;
  Outcome o = RunDaemonAndClient(2, /*looks=*/true, &returned, &served);
  EXPECT_TRUE(o.ok()) << o.title;
  EXPECT_TRUE(returned);
  EXPECT_LE(served, 1);
}

TEST(DetRuntime, ADaemonStuckOutsideItsIdleWaitIsADeadlock) {
  Runtime rt(Config(1, 5));
  int chan = 0;
  rt.spawn(0, "daemon", [&] { tsleep(&chan, "forever", 0); }, /*daemon=*/true);
  rt.spawn(0, "client", [] { preempt_point(); });
  Outcome o = rt.run();
  EXPECT_EQ(o.kind, Outcome::kDeadlock);
  EXPECT_EQ(o.title, "slabfuzz: deadlock: every thread waits: daemon (forever)");
}

TEST(DetRuntime, SleepInCriticalSectionIsDetected) {
  Runtime rt(Config(1, 1));
  int chan = 0;
  rt.spawn(0, "bad", [&] {
    crit_enter();
    tsleep(&chan, "bad", 0);
    crit_exit();
  });
  Outcome o = rt.run();
  EXPECT_EQ(o.kind, Outcome::kPanic);
  EXPECT_EQ(o.title, "slabfuzz: sleep-in-critical-section: tsleep(bad) in a CPU thread");
}

TEST(DetRuntime, SpinlockTakenTwiceIsDetected) {
  Runtime rt(Config(1, 1));
  spinlock s;
  spin_init(&s, "twice");
  rt.spawn(0, "bad", [&] {
    spin_lock(&s);
    spin_lock(&s);
  });
  Outcome o = rt.run();
  EXPECT_EQ(o.kind, Outcome::kPanic);
  EXPECT_EQ(o.title, "slabfuzz: spinlock-recursion: twice taken twice by bad");
}

TEST(DetRuntime, CritExitWithoutEnterIsDetected) {
  Runtime rt(Config(1, 1));
  rt.spawn(0, "bad", [] { crit_exit(); });
  Outcome o = rt.run();
  EXPECT_EQ(o.kind, Outcome::kPanic);
  EXPECT_NE(o.title.find("crit_exit: not in a critical section"), std::string::npos);
}

// A ticket wait, as kmalloc_obj's free ring publishes (take a ticket, wait until the
// tickets before it are published, publish): CPUs in critical sections, each switched
// out between taking its ticket and waiting. Whoever holds the next ticket must get to
// run, also when it has the lowest priority and every other thread is a spinner.
TEST(DetRuntime, SpinnersLetTheHolderOfTheNextTicketRun) {
  for (uint64_t seed = 0; seed < 60; seed++) {
    RuntimeConfig c = Config(3, seed);
    c.max_steps = 20000;
    Runtime rt(c);
    std::atomic<int> next{0}, published{0};
    for (int cpu = 0; cpu < 3; cpu++)
      rt.spawn(cpu, "cpu" + std::to_string(cpu), [&] {
        // As a magazine flush: ticket after ticket in one critical section, switched
        // out only once, after the first (and in the waits).
        crit_enter();
        int ticket = next.fetch_add(1);
        preempt_point();
        for (int k = 0; k < 4; k++) {
          while (published.load() != ticket) cpu_spinwait();
          published.store(ticket + 1);
          if (k < 3) ticket = next.fetch_add(1);
        }
        crit_exit();
      });
    Outcome o = rt.run();
    ASSERT_TRUE(o.ok()) << "seed " << seed << ": " << o.title;
    EXPECT_EQ(published.load(), 12);
  }
}

TEST(DetRuntime, LivelockIsBounded) {
  RuntimeConfig c = Config(1, 1);
  c.max_steps = 1000;
  Runtime rt(c);
  rt.spawn(0, "spinner", [] {
    for (;;) preempt_point();
  });
  Outcome o = rt.run();
  EXPECT_EQ(o.kind, Outcome::kLivelock);
}

TEST(DetRuntime, PanicTitleHasNoAddresses) {
  Runtime rt(Config(1, 1));
  int x = 0;
  rt.spawn(0, "p", [&] { panic("bad pointer %p", static_cast<void*>(&x)); });
  Outcome o = rt.run();
  EXPECT_EQ(o.title, "slabfuzz: panic: bad pointer ADDR");
}

TEST(DetRuntime, PanicTitleKeepsNamesAndDropsCounts) {
  Runtime rt(Config(1, 1));
  rt.spawn(0, "p", [] {
    panic("zone TEST1 on cpu0: 12 of 0x1f0 objects, 3rd try\nat 0xzz (x9 9x) 0x1fz 7");
  });
  Outcome o = rt.run();
  EXPECT_EQ(o.title,
            "slabfuzz: panic: zone TEST1 on cpu0: N of ADDR objects, 3rd try at 0xzz (x9 9x) "
            "ADDRz N");
}


// ---- shared accesses ---------------------------------------------------------------

// Whether this build instruments the probes (not in perf, nor with
// --define=slabfuzz_access=off).
bool AccessesInstrumented() {
  Runtime rt(Config(1, 1));
  long x = 0;
  rt.spawn(0, "t", [&] { probe::store(&x, 1); });
  return rt.run().accesses > 0;
}

#define REQUIRE_ACCESS_HOOKS() \
  if (!AccessesInstrumented()) GTEST_SKIP() << "built without the access callbacks"

// Two CPUs increment one counter with a load and a store, 50 times each, a preemption
// point between increments; returns the counter.
long RacyIncrements(uint64_t seed, int races, Outcome* out = nullptr,
                    std::vector<std::string>* trace = nullptr) {
  RuntimeConfig c = Config(2, seed);
  c.pct_races = races;
  Runtime rt(c);
  long counter = 0;
  for (int cpu = 0; cpu < 2; cpu++)
    rt.spawn(cpu, "inc" + std::to_string(cpu), [&] {
      for (int k = 0; k < 50; k++) {
        probe::racy_increment(&counter);
        preempt_point();
      }
    });
  Outcome o = rt.run();
  EXPECT_TRUE(o.ok()) << o.title;
  if (out != nullptr) *out = o;
  if (trace != nullptr) *trace = rt.trace();
  return counter;
}

TEST(DetRuntimeAccess, NoSwitchInsideAWindowWithoutAccessChangePoints) {
  REQUIRE_ACCESS_HOOKS();
  for (uint64_t seed = 1; seed <= 60; seed++) EXPECT_EQ(RacyIncrements(seed, 0), 100) << seed;
}

TEST(DetRuntimeAccess, ChangePointsAtAccessesOpenTheWindowDeterministically) {
  REQUIRE_ACCESS_HOOKS();
  int lost = 0;
  for (uint64_t seed = 1; seed <= 60; seed++) {
    Outcome o1, o2;
    std::vector<std::string> t1, t2;
    long a = RacyIncrements(seed, 4, &o1, &t1);
    long b = RacyIncrements(seed, 4, &o2, &t2);
    EXPECT_EQ(a, b) << seed;
    EXPECT_EQ(t1, t2) << seed;
    EXPECT_EQ(o1.accesses, o2.accesses);
    // A load and a store per increment but the first load (nothing was stored there
    // yet: no switch point), nothing else.
    EXPECT_EQ(o1.accesses, 199u);
    lost += a < 100;
  }
  EXPECT_GT(lost, 0) << "no change point ever fell between a load and its store";
}

// A slot published before it is written (the publisher's own load of the index is the
// last access before its store: no communication access lies in the window) and a
// reader that takes every published slot; returns how many it found unwritten.
int StaleReads(uint64_t seed, int races) {
  RuntimeConfig c = Config(2, seed);
  c.pct_races = races;
  Runtime rt(c);
  constexpr long kSlots = 40;
  static long idx, slots[kSlots];  // static: the same addresses in every run
  idx = 0;
  std::fill(slots, slots + kSlots, 0);
  int stale = 0;
  rt.spawn(0, "publisher", [&] {
    for (long i = 0; i < kSlots; i++) {
      probe::publish_early(&idx, slots);
      preempt_point();
    }
  });
  rt.spawn(1, "reader", [&] {
    for (long seen = 0; seen < kSlots;) {
      long n = probe::load(&idx);
      for (; seen < n; seen++) stale += probe::load(&slots[seen]) != seen + 1;
      if (seen < kSlots) cpu_spinwait();
    }
  });
  EXPECT_TRUE(rt.run().ok());
  return stale;
}

TEST(DetRuntimeAccess, ChangePointsAtSharedAccessesOpenAPublicationWindow) {
  REQUIRE_ACCESS_HOOKS();
  int found = 0;
  for (uint64_t seed = 1; seed <= 60; seed++) {
    EXPECT_EQ(StaleReads(seed, 0), 0) << seed;
    int a = StaleReads(seed, 4);
    EXPECT_EQ(a, StaleReads(seed, 4)) << seed;  // deterministic
    found += a > 0;
  }
  EXPECT_GT(found, 0) << "no change point ever fell between a publication and its write";
}

// The directed preemption of a program: the first access after the next preemption
// point that counts is the store (the load is of what nobody stored yet), so the other
// CPU's whole increment runs in between.
long DirectedIncrement(uint64_t seed, int accesses) {
  Runtime rt(Config(2, seed));
  long counter = 0;
  bool go = false;
  rt.spawn(0, "a", [&] {
    current_runtime()->preempt_after(1, accesses);
    preempt_point();
    go = true;
    probe::racy_increment(&counter);
  });
  rt.spawn(1, "b", [&] {
    while (!go) cpu_spinwait();
    probe::racy_increment(&counter);
  });
  Outcome o = rt.run();
  EXPECT_TRUE(o.ok()) << o.title;
  return counter;
}

TEST(DetRuntimeAccess, DirectedPreemptionLandsBetweenTwoAccesses) {
  REQUIRE_ACCESS_HOOKS();
  for (uint64_t seed = 1; seed <= 20; seed++) {
    EXPECT_EQ(DirectedIncrement(seed, 0), 2) << seed;  // at the point: no lost update
    EXPECT_EQ(DirectedIncrement(seed, 1), 1) << seed;  // before the store: lost
  }
}

// A timer counted in shared accesses (post_interrupt_at_access): the interrupt takes
// the CPU at the given access of its thread; the thread stores 0, then increments with
// a load and a store (accesses 1, 2, 3), the interrupt increments too. Returns the
// counter; *inside: the interrupt ran inside the thread's critical section.
long TimerAtAccessIncrement(int accesses, bool crit, bool* inside) {
  Runtime rt(Config(1, 3));
  long counter = 0;
  bool in_crit = false;
  rt.spawn(0, "t", [&] {
    rt.post_interrupt_at_access(0, accesses, [&] {
      *inside |= in_crit;
      probe::racy_increment(&counter);
    });
    probe::store(&counter, 0);
    if (crit) {
      crit_enter();
      in_crit = true;
    }
    probe::racy_increment(&counter);
    if (crit) {
      in_crit = false;
      crit_exit();
    }
  });
  Outcome o = rt.run();
  EXPECT_TRUE(o.ok()) << o.title;
  return counter;
}

TEST(DetRuntimeAccess, TimerAtAnAccessLandsBetweenTwoAccessesAndWaitsOutCriticalSections) {
  REQUIRE_ACCESS_HOOKS();
  bool inside = false;
  EXPECT_EQ(TimerAtAccessIncrement(2, false, &inside), 2);   // before the load
  EXPECT_EQ(TimerAtAccessIncrement(3, false, &inside), 1);   // before the store: lost
  EXPECT_EQ(TimerAtAccessIncrement(3, true, &inside), 2);    // at crit_exit instead
  EXPECT_EQ(TimerAtAccessIncrement(50, false, &inside), 2);  // when nothing else can run
  EXPECT_FALSE(inside);
}

// A loop with no preemption point that never ends (a walk of a list that became a
// cycle) is a livelock with a title, not a hang of the process.
TEST(DetRuntimeAccess, ALoopWithoutAPreemptionPointIsALivelock) {
  REQUIRE_ACCESS_HOOKS();
  RuntimeConfig c = Config(1, 1);
  c.max_step_accesses = 10'000;
  Runtime rt(c);
  long x = 0;
  bool after = false;
  rt.spawn(0, "walker", [&] {
    probe::store(&x, 1);
    while (probe::load(&x) != 0) {
    }
    after = true;
  });
  Outcome o = rt.run();
  EXPECT_EQ(o.kind, Outcome::kLivelock);
  EXPECT_EQ(o.title, "slabfuzz: livelock: no preemption point in N shared accesses");
  EXPECT_FALSE(after);
}

// The same directed preemption with a host lock held around the increment: the switch
// that falls on its store waits for the first access after the lock (the store to
// `after`), where the other CPU runs, sees that store not yet done and increments.
TEST(DetRuntimeAccess, NoSwitchInsideAHostLockButAtTheFirstAccessAfterIt) {
  REQUIRE_ACCESS_HOOKS();
  for (uint64_t seed = 1; seed <= 20; seed++) {
    Runtime rt(Config(2, seed));
    std::mutex m;
    long counter = 0, after = 0, seen_after = -1;
    bool go = false;
    rt.spawn(0, "a", [&] {
      current_runtime()->preempt_after(1, 1);
      preempt_point();
      go = true;
      {
        host_lock_guard g(m);
        probe::racy_increment(&counter);
      }
      probe::store(&after, 1);
    });
    rt.spawn(1, "b", [&] {
      while (!go) cpu_spinwait();
      seen_after = after;
      probe::racy_increment(&counter);
    });
    Outcome o = rt.run();
    EXPECT_TRUE(o.ok()) << o.title;
    EXPECT_EQ(counter, 2) << seed;     // no switch between the load and the store
    EXPECT_EQ(seen_after, 0) << seed;  // the switch was taken right after the lock
  }
}

TEST(DetRuntimeAccess, OwnStackIsNotShared) {
  REQUIRE_ACCESS_HOOKS();
  Runtime rt(Config(1, 1));
  long shared = 0;
  rt.spawn(0, "t", [&] {
    probe::stack_work(100);
    probe::store(&shared, 1);
  });
  Outcome o = rt.run();
  EXPECT_EQ(o.accesses, 1u);
}

TEST(DetRuntimeAccess, AliasPairsAreAnotherThreadsStore) {
  REQUIRE_ACCESS_HOOKS();
  auto run = [](bool same_thread) {
    Runtime rt(Config(2, 3));
    // Static: the same address in every run, as the arena's are.
    static long x = 0;
    bool stored = false;
    rt.spawn(0, "writer", [&] {
      probe::store(&x, 1);
      if (same_thread) probe::load(&x);
      stored = true;
    });
    rt.spawn(1, "reader", [&] {
      while (!stored) cpu_spinwait();
      if (!same_thread) probe::load(&x);
    });
    return rt.run();
  };
  Outcome same = run(true);
  EXPECT_EQ(same.alias_pairs, 0u);
  Outcome first = run(false);
  EXPECT_EQ(first.alias_pairs, 1u);
  Outcome again = run(false);
  EXPECT_EQ(again.alias_pairs, 1u);
  EXPECT_EQ(again.new_alias_pairs, 0u);  // the process has seen this pair of sites
}

TEST(DetRuntimeAccess, ThreadSwitchedAtAnAccessIsUnwoundAtItsNextSafePoint) {
  REQUIRE_ACCESS_HOOKS();
  struct Flag {
    bool* f;
    ~Flag() { *f = true; }
  };
  bool unwound = false, finished_access = false;
  Runtime rt(Config(2, 1));
  long counter = 0;
  bool go = false;
  rt.spawn(0, "parked", [&] {
    Flag guard{&unwound};
    current_runtime()->preempt_after(1, 1);
    preempt_point();
    go = true;
    probe::racy_increment(&counter);  // switched out before its store
    finished_access = true;            // resumed to be unwound: runs to the next point
    preempt_point();
    ADD_FAILURE() << "not unwound";
  });
  rt.spawn(1, "panics", [&] {
    while (!go) cpu_spinwait();
    panic("the run ends here");
  });
  Outcome o = rt.run();
  EXPECT_EQ(o.kind, Outcome::kPanic);
  EXPECT_TRUE(finished_access);
  EXPECT_TRUE(unwound);
  EXPECT_EQ(counter, 1);
}

}  // namespace
}  // namespace kenv
