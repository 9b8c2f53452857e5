// det_runtime.cc - the deterministic runtime: every kernel thread is a fiber on one
// OS thread, and a PCT scheduler decides at each preemption point who runs next.
//
// The model of a machine it keeps:
//  - each thread is bound to a virtual CPU. Switching to a thread of *another* CPU is
//    parallelism and may happen at any preemption point, even inside a critical
//    section; switching to another thread of the *same* CPU is preemption and happens
//    only while the CPU's thread is outside a critical section (a CPU whose thread is
//    suspended inside one is "pinned" to it);
//  - an interrupt is a short-lived thread of its CPU with the highest priority; once
//    started it pins its CPU until it returns, and it may not sleep;
//  - tsleep() parks a thread until wakeup() on its channel; timeouts are ignored, so
//    that a run in which every live thread is parked is a deadlock, reported as one;
//  - all scheduling choices (PCT priorities, d-1 change points) come from the
//    configured decision bytes, then from a PRNG seeded by the configured seed. The
//    same configuration and the same driver give the same interleaving, always;
//  - every shared access of the code under test is a potential switch point too (see
//    "Shared accesses" below): the allocators and the VM code are compiled with
//    SanitizerCoverage's load and store callbacks, and a change point drawn in
//    accesses, or a directed preemption, may land between any two of them. Accesses to
//    the running thread's own stack and descriptor are not counted: no other thread
//    can reach them.
// When a run fails (panic, deadlock, livelock) every unfinished fiber is resumed once
// with an exception that unwinds its stack, so that nothing it owned leaks.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "allocator/kenv/fiber.h"
#include "allocator/kenv/kenv.h"
#include "allocator/kenv/kenv_internal.h"
#include "allocator/kenv/runtime.h"

namespace kenv {

namespace {

constexpr size_t kStackSize = 256 * 1024;

struct FiberKilled {};

// Scheduling coverage, for the fuzzing engines: a counter per (site, event), where the
// site is the code address at which a thread was parked inside a critical section, or
// at which an interrupt took its CPU. libFuzzer reads the section
// __libfuzzer_extra_counters as it reads its edge counters, so an input that parks a
// thread, or lands an interrupt, somewhere new is kept, as one reaching a new edge is.
// Sites are taken relative to rt_preempt's address: the same in every process.
// AFL++ reads no such section: under it (SLABFUZZ_AFL) each feature also bumps a slot
// of AFL++'s own edge map, hashed over the map as its edges are.
#ifdef SLABFUZZ_FUZZING
__attribute__((section("__libfuzzer_extra_counters"), used)) uint8_t g_sched_cov[1 << 12];
#endif
#ifdef SLABFUZZ_AFL
// AFL++'s map and its size, from its runtime (afl-clang-fast links it into every
// binary). Read through the GOT in assembly: AFL++'s instrumentation pass declares
// __afl_area_ptr in every module it instruments and, finding a declaration of ours
// there, would rename its own (an undefined symbol at link time).
inline uint8_t* afl_area(uint32_t* size) {
  uint8_t** area;
  uint32_t* map_size;
  asm("movq __afl_area_ptr@GOTPCREL(%%rip), %0" : "=r"(area));
  asm("movq __afl_map_size@GOTPCREL(%%rip), %0" : "=r"(map_size));
  *size = *map_size;
  return *area;
}
#endif
enum SchedEvent { kParkedInCrit = 1, kInterruptedHere = 2 };

// Interleaving coverage (KRACE's alias coverage): a thread's load or store of a granule
// whose last store was another thread's, as the pair (store site, access site, kind),
// in the order they happened. Fed to libFuzzer beside the scheduling counters, and to
// AFL++'s map; counted in every build (Outcome::alias_pairs), and "new to this process"
// (Outcome::new_alias_pairs) for the schedule-focused mutation.
#ifdef SLABFUZZ_FUZZING
__attribute__((section("__libfuzzer_extra_counters"), used)) uint8_t g_alias_cov[1 << 13];
#endif
constexpr size_t kAliasSeenBits = 1 << 16;
uint64_t g_alias_seen[kAliasSeenBits / 64];  // pair hashes this process has reached

// Returns whether the pair is new to this process.
inline bool alias_feature(uint32_t store_site, uint32_t site, bool store) {
  uint64_t h = (uint64_t{store_site} * 0x9e3779b97f4a7c15ULL) ^
               ((uint64_t{site} << 1 | store) * 0xc2b2ae3d27d4eb4fULL);
  h ^= h >> 29;
#ifdef SLABFUZZ_FUZZING
  size_t i = static_cast<size_t>(h >> 51);  // 13 bits
  if (g_alias_cov[i] != 255) g_alias_cov[i]++;
#ifdef SLABFUZZ_AFL
  uint32_t map_size = 0;
  if (uint8_t* area = afl_area(&map_size); area != nullptr && map_size > 0)
    area[(h >> 20) % map_size]++;
#endif
#endif
  size_t b = static_cast<size_t>(h >> 48);  // 16 bits
  uint64_t bit = uint64_t{1} << (b & 63);
  if (g_alias_seen[b >> 6] & bit) return false;
  g_alias_seen[b >> 6] |= bit;
  return true;
}

// The last store to each granule (8 bytes) of this run: an exact map (open addressing,
// linear probing), so that what counts as a switch point never depends on where the
// host's allocator put things; entries of earlier runs are told apart by a generation
// number (the table is cleared only when it wraps). Full at 3/4: further granules are
// not remembered, and from then on every load counts (still the same for the same run).
// Keys (granule and generation in one word, so that a probe reads 8 bytes) apart from
// the values (the last store's site and thread), read only on a hit.
struct AliasStore {
  uint32_t site;       // the last store's
  uint16_t tid;        // the last store's thread
  uint16_t accessor;   // the thread of the last counted access, load or store (kTidMask),
                       // and kSharedBit once two threads have accessed the granule
};
constexpr uint16_t kSharedBit = 0x8000;
constexpr uint16_t kTidMask = 0x7fff;
inline uint64_t alias_key(uintptr_t granule, uint16_t gen) {
  return static_cast<uint64_t>(granule) << 16 | gen;
}
constexpr int kAliasBits = 12;
constexpr size_t kAliasSlots = size_t{1} << kAliasBits;
constexpr size_t kAliasFull = kAliasSlots / 4 * 3;
// One map for the process, reused by every run (one runtime is alive at a time): a run
// starts a new generation instead of clearing it.
uint64_t g_alias_keys[kAliasSlots];
AliasStore g_alias_vals[kAliasSlots];
uint16_t g_alias_gen = 0;

inline void sched_feature(const void* site, SchedEvent ev) {
#ifdef SLABFUZZ_FUZZING
  if (site == nullptr) return;
  uint64_t off = reinterpret_cast<uintptr_t>(site) - reinterpret_cast<uintptr_t>(&rt_preempt);
  size_t i = static_cast<size_t>(((off ^ (uint64_t{ev} << 40)) * 0x9e3779b97f4a7c15ULL) >> 52);
  if (g_sched_cov[i] != 255) g_sched_cov[i]++;
#ifdef SLABFUZZ_AFL
  uint32_t map_size = 0;
  if (uint8_t* area = afl_area(&map_size); area != nullptr && map_size > 0)
    area[(uint64_t{i} * 0x9e3779b1u + 0x5bd1e995u) % map_size]++;
#endif
#else
  (void)site;
  (void)ev;
#endif
}

// A thread's state but its fiber: what a reused descriptor starts afresh from.
struct DetThreadState {
  thread td{};
  std::string name;
  int cpu = 0;
  bool daemon = false;
  bool intr = false;
  enum State { kRunnable, kBlocked, kDone } state = kRunnable;
  bool started = false;
  const void* wchan = nullptr;
  spinlock* spin_wait = nullptr;
  int64_t prio = 0;
  uint64_t seq = 0;
  uint64_t yielded_at = UINT64_MAX;  // epoch of its last busy-wait
  uint64_t spun_at = 0;              // step of its last busy-wait
  int preempt_in = 0;  // > 0: preempted at the preemption point this count runs out
  int preempt_then = 0;  // > 0: ... or this many shared accesses after that point
  int preempt_access_in = 0;  // > 0: preempted at the shared access this count runs out
  // Resumed to be unwound while it was switched out at an access (in the middle of
  // whatever code, a constructor's or a container's too): it runs on to its next
  // preemption point or wait, where it is unwound (see drain_point()).
  bool draining = false;
  bool switch_next = false;  // a change point fell on its last access: switch at the next
  uintptr_t stack_lo = 0;     // its fiber's stack, once it has one
  uintptr_t stack_bytes = 0;
  uint64_t fire_at = 0;  // an armed interrupt: runs once its CPU has made this many steps
  uint64_t fire_access = 0;  // ... or once its CPU has made this many shared accesses
  std::function<void()> fn;
};

struct DetThread : DetThreadState {
  std::optional<Fiber> fiber;  // from its first run to its end
};

// Finished threads' descriptors, for the next ones (a fuzzer creates a handful per
// input, thousands of times a second); per OS thread, as runtimes are.
thread_local std::vector<std::unique_ptr<DetThread>> t_spare_threads;

// The thread whose shared accesses count, while it runs: none outside a run, in set-up
// (run_on_cpu0's solo thread) and while a failed run is unwound. One load and a test is
// all an access costs when nothing is to be done.
DetThread* g_accessor = nullptr;

std::unique_ptr<DetThread> new_thread() {
  if (t_spare_threads.empty()) return std::make_unique<DetThread>();
  std::unique_ptr<DetThread> t = std::move(t_spare_threads.back());
  t_spare_threads.pop_back();
  return t;
}

// Keeps t (finished, or never started) for reuse, as a fresh descriptor.
void recycle_thread(std::unique_ptr<DetThread> t) {
  if (t_spare_threads.size() >= 64) return;
  t->fiber.reset();
  static_cast<DetThreadState&>(*t) = DetThreadState{};
  t_spare_threads.push_back(std::move(t));
}


// Scheduling decisions: the configured bytes first, then splitmix64 from the seed.
class Decisions {
 public:
  void reset(std::span<const uint8_t> bytes, uint64_t seed) {
    bytes_ = bytes;
    pos_ = 0;
    state_ = seed ^ 0x5eed5eed5eed5eedULL;
  }
  uint64_t next() {
    if (pos_ < bytes_.size()) {
      uint64_t v = 0;
      size_t n = std::min<size_t>(8, bytes_.size() - pos_);
      memcpy(&v, bytes_.data() + pos_, n);
      pos_ += n;
      return v ^ splitmix();
    }
    return splitmix();
  }
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }

 private:
  uint64_t splitmix() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  uint64_t state_ = 0;
};

Runtime* g_runtime = nullptr;

}  // namespace

class Runtime::Impl {
 public:
  explicit Impl(const RuntimeConfig& c) : cfg(c) {
    init_cpus(cfg, gd);
    dec.reset(cfg.decision_bytes, cfg.seed);
    // A run has a handful of threads and change points: room for them up front (a
    // fuzzer makes a runtime per input, and each growth is an allocation).
    threads.reserve(16);
    order.reserve(16);
    change_points.reserve(16);
    access_cps.reserve(16);
    armed[kComm].reserve(16);
    armed[kShared].reserve(16);
    std::fill(std::begin(next_timer_access), std::end(next_timer_access), UINT64_MAX);
  }

  RuntimeConfig cfg;
  globaldata gd[MAXCPU];
  std::vector<std::unique_ptr<DetThread>> threads;
  // The same threads by PCT priority, highest first (ties: the earlier created): the
  // scheduler's pick is the first eligible one, usually found at once.
  std::vector<DetThread*> order;
  std::unique_ptr<Fiber> main;
  DetThread* cur = nullptr;
  DetThread* pin[MAXCPU] = {};
  uint64_t cpu_steps[MAXCPU] = {};  // preemption points passed on each CPU
  uint64_t cpu_accesses[MAXCPU] = {};  // shared accesses made on each CPU
  // The earliest fire_access of an armed timer of each CPU (UINT64_MAX: none).
  uint64_t next_timer_access[MAXCPU];
  DetThread* solo = nullptr;
  DetThread* next_pick = nullptr;  // set by rt_spinwait: run this one next
  Decisions dec;
  std::vector<uint64_t> change_points;
  size_t next_cp = 0;
  // Change points in accesses: (step, offset, kind), sorted by step; once the step is
  // passed, one falls due at access number `armed[kind]` of its kind (UINT64_MAX: none
  // armed). Kind kComm counts communication accesses, kShared accesses to shared
  // granules (see access()).
  enum AccessKind { kComm = 0, kShared = 1 };
  struct AccessCp {
    uint64_t step;
    uint32_t off;
    uint8_t kind;
    auto operator<=>(const AccessCp&) const = default;
  };
  std::vector<AccessCp> access_cps;
  size_t next_acp = 0;
  std::vector<uint64_t> armed[2];
  uint64_t next_armed[2] = {UINT64_MAX, UINT64_MAX};
  uint64_t accesses = 0;
  uint64_t kind_accesses[2] = {};  // of them, communication (kComm) and shared (kShared)
  uint64_t alias_pairs = 0;
  uint64_t new_alias_pairs = 0;
  uint16_t alias_gen = 0;
  size_t alias_used = 0;  // granules in the map this run
  int64_t next_low_prio = 0;
  uint64_t steps = 0;
  uint64_t step_accesses = 0;  // shared accesses since the last step
  uint64_t switches = 0;
  uint64_t seq = 0;
  uint64_t epoch = 0;  // advances at every preemption point
  size_t ndone = 0;    // finished threads still in `threads` (dropped between resumes)
  int spin_blocked = 0;  // threads blocked on a spinlock (a release need look only then)
  bool failed = false;
  bool killing = false;
  Outcome outcome;
  std::vector<std::string> trace;

  // Records a trace line; `text` (a callable giving the line) runs only when a trace is
  // kept, so that a fuzzer's runs build no strings.
  template <class Text>
  void note(Text&& text) {
    if (cfg.record_trace) trace.push_back("step " + std::to_string(steps) + ": " + text());
  }

  DetThread* add(int cpu, std::string name, std::function<void()> fn, bool daemon,
                 bool intr) {
    if (cpu < 0 || cpu >= cfg.ncpus) {
      fprintf(stderr, "slabfuzz: config: thread %s on cpu %d of %d\n", name.c_str(), cpu,
              cfg.ncpus);
      exit(2);
    }
    std::unique_ptr<DetThread> t = new_thread();
    t->name = std::move(name);
    t->cpu = cpu;
    t->daemon = daemon;
    t->intr = intr;
    t->fn = std::move(fn);
    t->seq = seq++;
    t->td.td_gd = &gd[cpu];
    t->td.td_name = t->name.c_str();
    t->td.td_intr = intr ? 1 : 0;
    t->td.td_runtime = t.get();
    // PCT: interrupts above every thread, earlier interrupts first; threads get a
    // random priority above the d-1 change-point priorities.
    if (intr)
      t->prio = (int64_t{1} << 40) - static_cast<int64_t>(t->seq);
    else
      t->prio = cfg.pct_depth + 1 + static_cast<int64_t>(dec.below(1u << 20));
    DetThread* raw = t.get();
    threads.push_back(std::move(t));
    order_insert(raw);
    return raw;
  }

  static bool before(const DetThread* a, const DetThread* b) {
    return a->prio > b->prio || (a->prio == b->prio && a->seq < b->seq);
  }
  void order_insert(DetThread* t) {
    order.insert(std::upper_bound(order.begin(), order.end(), t, before), t);
  }
  // A priority change (a PCT change point, a directed preemption) moves t in `order`.
  void set_prio(DetThread* t, int64_t prio) {
    order.erase(std::find(order.begin(), order.end(), t));
    t->prio = prio;
    order_insert(t);
  }

  // Inlined into the scheduler's scan (called at every preemption point, for every
  // thread above the one that runs).
  __attribute__((always_inline)) bool eligible(DetThread* t) const {
    if (t->state != DetThread::kRunnable) return false;
    if (t->fire_at > cpu_steps[t->cpu]) return false;  // a timer not yet due
    if (t->fire_access > cpu_accesses[t->cpu]) return false;
    if (solo != nullptr && t != solo) return false;
    DetThread* p = pin[t->cpu];
    return p == nullptr || p == t;
  }

  // The highest-priority eligible thread. Threads in a busy-wait since the last
  // preemption point (rt_spinwait) come last, so that whoever they wait for runs.
  DetThread* pick() const {
    DetThread* best = pick_among(true);
    return best != nullptr ? best : longest_spinner(nullptr);
  }

  // For a busy-waiting thread: the best eligible thread but `self`, one that has not
  // busy-waited since the last preemption point if there is one. Never `self`: a spinner
  // of higher priority than the one it waits for would otherwise pick itself for ever
  // (the other may have been switched out at an access, mid-way between its own
  // busy-waits, with no preemption point since).
  DetThread* pick_other(const DetThread* self) const {
    for (DetThread* t : order) {
      if (t == self || !eligible(t)) continue;
      if (t->yielded_at != epoch) return t;
    }
    return longest_spinner(self);
  }

  // When every eligible thread is busy-waiting: the one that has waited longest since it
  // last looked. Not the highest-priority one: two spinners would hand the CPU to each
  // other for ever while a third, of lower priority, held the ticket both wait for (the
  // free ring's xindex: three CPUs flushing magazines into one slab; ci/fuzz found it on
  // the correct allocator as 'livelock: busy-wait did not end').
  DetThread* longest_spinner(const DetThread* self) const {
    DetThread* best = nullptr;
    for (DetThread* t : order) {
      if (t == self || !eligible(t)) continue;
      if (best == nullptr || t->spun_at < best->spun_at) best = t;
    }
    return best;
  }

  DetThread* pick_among(bool skip_spinners) const {
    for (DetThread* t : order) {
      if (!eligible(t)) continue;
      if (skip_spinners && t->yielded_at == epoch) continue;
      return t;
    }
    return nullptr;
  }

  // Records whether t, about to be suspended, keeps its CPU pinned.
  void update_pin(DetThread* t) {
    bool keeps = t->state != DetThread::kDone &&
                 (t->td.td_critcount > 0 || (t->intr && t->started));
    if (keeps)
      pin[t->cpu] = t;
    else if (pin[t->cpu] == t)
      pin[t->cpu] = nullptr;
  }

  // Called in a fiber: give the CPU to the scheduler if someone else should run.
  void reschedule(bool must_leave, const void* site = nullptr, bool at_access = false) {
    DetThread* t = cur;
    update_pin(t);
    DetThread* next = pick();
    if (!must_leave && next == t) return;
    if (next != nullptr && next->intr && next->cpu == t->cpu)
      sched_feature(site, kInterruptedHere);
    else if (t->td.td_critcount > 0)
      sched_feature(site, kParkedInCrit);
    Fiber::Switch(&*t->fiber, main.get());
    // Resumed by the scheduler.
    if (killing) {
      if (at_access) {
        t->draining = true;
        return;
      }
      throw FiberKilled{};
    }
  }

  static void entry(void* arg) {
    auto* t = static_cast<DetThread*>(arg);
    Impl* rt = current_impl();
    try {
      if (!rt->killing) t->fn();
    } catch (const FiberKilled&) {
    }
    t->state = DetThread::kDone;
    rt->update_pin(t);
    Fiber::SwitchFinal(&*t->fiber, rt->main.get());
  }

  static Impl* current_impl();

  void resume(DetThread* t) {
    if (t != cur) switches++;
    cur = t;
    curthread_tls = &t->td;
    if (!t->fiber) {
      t->fiber.emplace(&Impl::entry, t, kStackSize);
      t->stack_lo = reinterpret_cast<uintptr_t>(t->fiber->stack_lo());
      t->stack_bytes = t->fiber->stack_bytes();
    }
    t->started = true;
    note([&] { return "run " + t->name + "@cpu" + std::to_string(t->cpu); });
    g_accessor = killing || solo != nullptr ? nullptr : t;
    Fiber::Switch(main.get(), &*t->fiber);
    g_accessor = nullptr;
    curthread_tls = nullptr;
    cur = nullptr;
    if (t->state == DetThread::kDone) {
      if (t->intr) gd[t->cpu].gd_ipending.fetch_sub(1);
      t->fiber.reset();
      t->fn = nullptr;
      ndone++;
    }
  }

  std::string state_report() const {
    std::string r;
    char line[512];
    for (auto& up : threads) {
      const DetThread* t = up.get();
      if (t->state == DetThread::kDone) continue;
      const char* st = t->state == DetThread::kRunnable ? "runnable" : "waiting";
      snprintf(line, sizeof(line), "  thread %-16s cpu%d %-8s %s%s crit=%d spin=%d%s%s\n",
               t->name.c_str(), t->cpu, st, t->td.td_wmesg ? "on " : "",
               t->td.td_wmesg ? t->td.td_wmesg : "", t->td.td_critcount, t->td.td_spincount,
               t->daemon ? " daemon" : "", t->intr ? " interrupt" : "");
      r += line;
    }
    snprintf(line, sizeof(line), "  boot phase %s, %" PRIu64 " steps, %" PRIu64 " switches\n",
             boot_phase_name(current_boot_phase()), steps, switches);
    r += line;
    return r;
  }

  void fail(Outcome::Kind kind, std::string title, const std::string& message) {
    if (failed) return;
    failed = true;
    outcome.kind = kind;
    outcome.title = std::move(title);
    outcome.report = message + "\n" + state_report();
  }

  Outcome run_loop() {
    outcome = Outcome{};
    failed = false;
    killing = false;
    accesses = alias_pairs = new_alias_pairs = step_accesses = 0;
    kind_accesses[kComm] = kind_accesses[kShared] = 0;
    alias_used = 0;
    if (++g_alias_gen == 0) {  // wrapped: entries of 65,535 runs ago must not match
      std::fill(g_alias_keys, g_alias_keys + kAliasSlots, 0);
      g_alias_gen = 1;
    }
    alias_gen = g_alias_gen;
    if (!main) main = Fiber::Main();  // the OS thread's context, for every run_loop
    for (;;) {
      if (failed) break;
      // Finished interrupts would otherwise lengthen every scheduling decision.
      if (ndone > 4) drop_done(solo);
      DetThread* best = next_pick != nullptr && eligible(next_pick) ? next_pick : pick();
      next_pick = nullptr;
      if (best == nullptr && fire_timers()) continue;
      if (best == nullptr) {
        // Nobody can run. That is the end of the run if every thread has finished
        // but daemons in their idle wait; a thread, or a daemon waiting elsewhere
        // (for memory, say) with nobody left to wake it, is a deadlock.
        auto counts = [this](const DetThread* t) {
          return t->state != DetThread::kDone && (solo == nullptr || t == solo);
        };
        bool stuck = false;
        for (auto& up : threads)
          if (counts(up.get()) && (!up->daemon || !up->td.td_idle)) stuck = true;
        if (stuck) {
          // The shape of the wait, not who: each daemon by name, the other threads
          // counted per wait channel name ("N CPU threads (vmwait)"), so that one
          // deadlock has one title whichever CPUs its program used.
          std::string waiting;
          std::vector<std::pair<std::string, int>> others;
          for (auto& up : threads) {
            if (!counts(up.get()) || up->state != DetThread::kBlocked) continue;
            std::string wmesg = up->td.td_wmesg ? up->td.td_wmesg : "?";
            if (!up->daemon) {
              auto it = std::find_if(others.begin(), others.end(),
                                     [&](const auto& o) { return o.first == wmesg; });
              if (it == others.end())
                others.emplace_back(wmesg, 1);
              else
                it->second++;
              continue;
            }
            if (!waiting.empty()) waiting += ", ";
            waiting += up->name + " (" + wmesg + ")";
          }
          std::sort(others.begin(), others.end());
          for (const auto& [wmesg, n] : others) {
            if (!waiting.empty()) waiting += ", ";
            waiting += std::to_string(n) + " CPU threads (" + wmesg + ")";
          }
          fail(Outcome::kDeadlock, stable_title("deadlock", "every thread waits: " + waiting),
               "deadlock: no thread can run");
        }
        break;
      }
      resume(best);
    }
    // Daemons in their idle wait hold nothing: asked to stop, they return by
    // themselves (no unwinding, which costs a fuzzer a throw per daemon per run).
    for (auto& up : threads) {
      DetThread* t = up.get();
      if (!t->daemon || !t->started || t->state != DetThread::kBlocked || !t->td.td_idle ||
          t->spin_wait != nullptr || (solo != nullptr && t != solo))
        continue;
      t->td.td_stop = 1;
      t->state = DetThread::kRunnable;
      t->wchan = nullptr;
      resume(t);
    }
    // Unwind every fiber that has started and not finished, so that nothing leaks.
    killing = true;
    for (auto& up : threads) {
      DetThread* t = up.get();
      if (t->state == DetThread::kDone) continue;
      if (solo != nullptr && t != solo) continue;
      if (t->started) {
        resume(t);
      } else {
        t->state = DetThread::kDone;
        if (t->intr) gd[t->cpu].gd_ipending.fetch_sub(1);
      }
      pin[t->cpu] = nullptr;
    }
    killing = false;
    drop_done(nullptr);
    outcome.steps = steps;
    outcome.switches = switches;
    outcome.accesses = accesses;
    outcome.alias_pairs = alias_pairs;
    outcome.new_alias_pairs = new_alias_pairs;
    return outcome;
  }

  // Recycles the finished threads but `keep` (run_on_cpu0's solo thread, which it still
  // refers to while its run lasts); the others keep their order, which wakeup() and
  // priority ties follow.
  void drop_done(const DetThread* keep) {
    auto gone = [keep](const DetThread* t) { return t->state == DetThread::kDone && t != keep; };
    std::erase_if(order, gone);
    size_t j = 0;
    for (size_t i = 0; i < threads.size(); i++) {
      if (gone(threads[i].get()))
        recycle_thread(std::move(threads[i]));
      else
        threads[j++] = std::move(threads[i]);
    }
    threads.resize(j);
    ndone = 0;
  }

  // Nobody can run: timers still armed fire now (a CPU with nothing to do still takes
  // its timer interrupt). Returns whether one did.
  bool fire_timers() {
    bool fired = false;
    for (auto& up : threads) {
      if (up->state == DetThread::kRunnable && (up->fire_at > cpu_steps[up->cpu] ||
                                                up->fire_access > cpu_accesses[up->cpu])) {
        up->fire_at = 0;
        up->fire_access = 0;
        fired = true;
      }
    }
    for (uint64_t& n : next_timer_access) n = UINT64_MAX;
    return fired;
  }

  void init_pct() {
    change_points.clear();
    for (int i = 1; i < cfg.pct_depth; i++)
      change_points.push_back(steps + dec.below(std::max(1, cfg.pct_horizon)));
    std::sort(change_points.begin(), change_points.end());
    next_cp = 0;
    // Drawn after the d-1 above, so that a configuration without them schedules as it
    // always did. The offset is log-uniform: most windows are a few accesses long, a
    // few are hundreds.
    access_cps.clear();
    for (int i = 0; i < cfg.pct_races; i++) {
      int horizon = cfg.pct_access_horizon > 0 ? cfg.pct_access_horizon : cfg.pct_horizon;
      uint64_t at = steps + dec.below(std::max(1, horizon));
      uint32_t off = static_cast<uint32_t>(dec.below(uint64_t{1} << dec.below(9)));
      auto kind = static_cast<uint8_t>(dec.below(2));
      access_cps.push_back(AccessCp{at, off, kind});
    }
    std::sort(access_cps.begin(), access_cps.end());
    next_acp = 0;
    for (int k : {kComm, kShared}) {
      armed[k].clear();
      next_armed[k] = UINT64_MAX;
    }
    next_low_prio = std::max(1, cfg.pct_depth - 1 + cfg.pct_races);
  }

  // A change point of the schedule at t's current position: below every thread.
  void lower(DetThread* t, const char* why) {
    set_prio(t, next_low_prio--);
    note([&] { return std::string(why) + " " + t->name; });
  }

  // Called at every preemption point: change points in accesses whose step has come
  // are armed.
  void arm_access_cps() {
    while (next_acp < access_cps.size() && steps >= access_cps[next_acp].step) {
      const AccessCp& cp = access_cps[next_acp];
      armed[cp.kind].push_back(kind_accesses[cp.kind] + cp.off);
      next_armed[cp.kind] = std::min(next_armed[cp.kind], armed[cp.kind].back());
      next_acp++;
    }
  }

  // The granule's slot in this run's map: its entry, or the free slot where it would go.
  __attribute__((always_inline)) size_t alias_slot(uintptr_t g) const {
    size_t i = static_cast<size_t>((g * 0x9e3779b97f4a7c15ULL) >> (64 - kAliasBits));
    for (;;) {
      uint64_t k = g_alias_keys[i];
      if ((k & 0xffff) != alias_gen || (k >> 16) == g) return i;
      i = (i + 1) & (kAliasSlots - 1);
    }
  }

  // A shared access by t (the running thread) at `a`, from instrumented code at `site`.
  //
  // It is a potential switch point if it is a store, or a load of a granule stored
  // during this run (or of any granule once the map is full): a switch before a load of
  // what nobody has written (the configuration of a zone, a slab's geometry) orders
  // nothing that a switch at the next access would not (partial-order reduction, as
  // DPOR tools have it), and each such point makes a change point less likely to land
  // in a real window. Directed preemptions count these.
  //
  // The PCT change points at accesses fall right after an access, before the thread's
  // next one: where what it just read may go stale, or what it just published may be
  // read, before it acts on it. That is where the races of shared-memory code live
  // (KRACE's and SegFuzz's observation). Each change point counts one of two kinds,
  // drawn with it:
  //  - communication: an access to a granule whose last access was another thread's (a
  //    flag another CPU polls, a count it changes, a list it walks); a fifth of the
  //    counted accesses;
  //  - shared: an access to a granule two threads have accessed in this run, the
  //    communication ones and more: a thread that reads an index and then publishes it
  //    (its own load last) is at a shared access, not a communication one, between
  //    the publication and the store that should have come first.
  __attribute__((always_inline)) void access(DetThread* t, uintptr_t a, bool store,
                                             const void* site) {
    bool switch_here = false;
    if (t->switch_next) {
      t->switch_next = false;
      switch_here = true;
    }
    uintptr_t g = a >> 3;
    size_t slot = alias_slot(g);
    bool known = (g_alias_keys[slot] & 0xffff) == alias_gen;
    if (!store && !known && alias_used < kAliasFull) {
      if (switch_here) {
        if (t->td.td_hostlock != 0)
          t->switch_next = true;
        else
          switch_to_others(site);
      }
      return;
    }
    ++accesses;
    if (++step_accesses > cfg.max_step_accesses && !killing) {
      fail(Outcome::kLivelock,
           stable_title("livelock", "no preemption point in " +
                                        std::to_string(cfg.max_step_accesses) +
                                        " shared accesses"),
           "livelock: a loop without a preemption point (in " + t->name + ")");
      note([&] { return "livelock at an access in " + t->name; });
      throw FiberKilled{};  // unwound from here, as a panic at this line would be
    }
    if (t->preempt_access_in > 0 && --t->preempt_access_in == 0) {
      lower(t, "directed preemption at an access:");
      switch_here = true;
    }
    // A timer of this CPU falls due: as a hardware interrupt, it takes the CPU at this
    // access, or, inside a critical section, at its crit_exit (gd_ipending is set).
    if (++cpu_accesses[t->cpu] >= next_timer_access[t->cpu] && timer_due(t->cpu))
      switch_here |= t->td.td_critcount == 0 && !t->intr;
    if (switch_here && t->td.td_hostlock != 0) {  // not inside a host lock: at the next access
      t->switch_next = true;
      switch_here = false;
    }
    if (switch_here) {
      if (switch_to_others(site)) return;
      slot = alias_slot(g);  // others ran: the map may have grown
      known = (g_alias_keys[slot] & 0xffff) == alias_gen;
    }
    // As the access happens (after the switch, if there was one): interleaving coverage,
    // communication, the map.
    uint32_t s32 = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(site) -
                                         reinterpret_cast<uintptr_t>(&rt_preempt));
    uint16_t tid = static_cast<uint16_t>(t->seq + 1);
    AliasStore& last = g_alias_vals[slot];
    if (known && last.tid != tid) {
      alias_pairs++;
      if (alias_feature(last.site, s32, store)) new_alias_pairs++;
    }
    bool comm = known && (last.accessor & kTidMask) != tid;
    bool shared = comm || (known && (last.accessor & kSharedBit));
    if (shared) {
      bool due = comm && due_at(kComm);
      due |= due_at(kShared);
      if (due) {
        lower(t, "priority change after an access:");
        t->switch_next = true;
      }
    }
    uint16_t accessor = static_cast<uint16_t>(tid | (shared ? kSharedBit : 0));
    if (store && (known || alias_used < kAliasFull)) {
      alias_used += !known;
      g_alias_keys[slot] = alias_key(g, alias_gen);
      last = AliasStore{s32, tid, accessor};
    } else if (known) {
      last.accessor = accessor;
    }
  }

  // An access timer of `cpu` may be due: recomputes the CPU's next one; true if one is
  // due now.
  bool timer_due(int c) {
    uint64_t now = cpu_accesses[c], next = UINT64_MAX;
    bool due = false;
    for (auto& up : threads) {
      if (up->cpu != c || up->state != DetThread::kRunnable || up->fire_access == 0) continue;
      if (up->fire_access <= now)
        due = true;
      else
        next = std::min(next, up->fire_access);
    }
    next_timer_access[c] = next;
    if (due) note([&] { return "timer due at an access of cpu" + std::to_string(c); });
    return due;
  }

  // Counts an access of the kind; true if a change point of that kind falls due.
  __attribute__((always_inline)) bool due_at(int kind) {
    if (++kind_accesses[kind] < next_armed[kind]) return false;
    std::vector<uint64_t>& a = armed[kind];
    uint64_t now = kind_accesses[kind];
    std::erase_if(a, [now](uint64_t at) { return at <= now; });
    next_armed[kind] = a.empty() ? UINT64_MAX : *std::min_element(a.begin(), a.end());
    return true;
  }

  // A switch at an access (its priority was lowered): returns true if the run is being
  // unwound (the thread goes on draining: no coverage from it).
  bool switch_to_others(const void* site) {
    epoch++;  // busy-waiters look again: what they wait for may have been stored
    reschedule(false, site, true);
    return killing;
  }
};

namespace {
Runtime::Impl* g_impl = nullptr;
}

Runtime::Impl* Runtime::Impl::current_impl() { return g_impl; }

namespace {
// The run is being unwound: true if the caller should do nothing (no switch, no wait);
// a draining thread (see DetThreadState::draining) is unwound here instead.
inline bool drain_point(Runtime::Impl* rt) {
  if (!rt->killing) return false;
  if (rt->cur != nullptr && rt->cur->draining) throw FiberKilled{};
  return true;
}
}  // namespace

Runtime::Runtime(const RuntimeConfig& config) : impl_(std::make_unique<Impl>(config)) {
  if (g_runtime != nullptr) {
    fprintf(stderr, "slabfuzz: runtime: two runtimes alive at once\n");
    abort();
  }
  g_runtime = this;
  g_impl = impl_.get();
}

Runtime::~Runtime() {
  g_runtime = nullptr;
  g_impl = nullptr;
}

Runtime* current_runtime() { return g_runtime; }

// A deterministic run reproduces from its input: nothing to add.
void set_failure_note(const std::string&) {}

int ncpus() { return g_impl ? g_impl->cfg.ncpus : 1; }

void Runtime::spawn(int cpu, std::string name, std::function<void()> fn, bool daemon) {
  impl_->add(cpu, std::move(name), std::move(fn), daemon, false);
}

void Runtime::post_interrupt(int cpu, std::function<void()> fn) {
  Impl* rt = impl_.get();
  if (rt->killing) return;
  DetThread* t = rt->add(cpu, "intr" + std::to_string(cpu), std::move(fn), false, true);
  rt->gd[cpu].gd_ipending.fetch_add(1);
  rt->note([&] { return "post interrupt " + t->name; });
}

void Runtime::post_interrupt_after(int cpu, int n, std::function<void()> fn) {
  Impl* rt = impl_.get();
  if (rt->killing) return;
  DetThread* t = rt->add(cpu, "timer" + std::to_string(cpu), std::move(fn), false, true);
  t->fire_at = rt->cpu_steps[cpu] + static_cast<uint64_t>(std::max(n, 0));
  rt->gd[cpu].gd_ipending.fetch_add(1);
  rt->note([&] { return "arm timer " + t->name; });
}

void Runtime::post_interrupt_at_access(int cpu, int accesses, std::function<void()> fn) {
  Impl* rt = impl_.get();
  if (rt->killing) return;
  DetThread* t = rt->add(cpu, "timer" + std::to_string(cpu), std::move(fn), false, true);
  t->fire_access = rt->cpu_accesses[cpu] + static_cast<uint64_t>(std::max(accesses, 1));
  rt->next_timer_access[cpu] = std::min(rt->next_timer_access[cpu], t->fire_access);
  rt->gd[cpu].gd_ipending.fetch_add(1);
  rt->note([&] { return "arm access timer " + t->name; });
}

void Runtime::preempt_after(int n, int accesses) {
  Impl* rt = impl_.get();
  if (rt->cur != nullptr && n > 0) {
    rt->cur->preempt_in = n;
    rt->cur->preempt_then = std::max(accesses, 0);
  }
}

Outcome Runtime::run() {
  impl_->init_pct();
  return impl_->run_loop();
}

Outcome Runtime::run_on_cpu0(std::function<void()> fn) {
  Impl* rt = impl_.get();
  DetThread* t = rt->add(0, "setup", std::move(fn), false, false);
  rt->solo = t;
  Outcome o = rt->run_loop();
  rt->solo = nullptr;
  return o;
}

const std::vector<std::string>& Runtime::trace() const { return impl_->trace; }

// ---- kernel primitives' slow paths ------------------------------------------------

void rt_preempt() {
  Runtime::Impl* rt = g_impl;
  if (rt == nullptr || rt->cur == nullptr || drain_point(rt)) return;
  DetThread* t = rt->cur;
  rt->epoch++;
  rt->cpu_steps[t->cpu]++;
  rt->step_accesses = 0;
  if (++rt->steps > rt->cfg.max_steps) {
    rt->fail(Outcome::kLivelock,
             stable_title("livelock", "no end after " + std::to_string(rt->cfg.max_steps) +
                                          " preemption points"),
             "livelock");
    rt->reschedule(true);
    return;
  }
  if (rt->next_cp < rt->change_points.size() && rt->steps >= rt->change_points[rt->next_cp]) {
    rt->lower(t, "priority change");
    rt->next_cp++;
  }
  rt->arm_access_cps();
  t->switch_next = false;  // its priority is lowered already: the point below switches
  if (t->preempt_in > 0 && --t->preempt_in == 0) {
    if (t->preempt_then > 0)
      t->preempt_access_in = std::exchange(t->preempt_then, 0);
    else
      rt->lower(t, "directed preemption");
  }
  rt->reschedule(false, __builtin_return_address(0));
}

void rt_progress() {}

// A busy-wait: run the best *other* eligible thread (if none, the caller spins on:
// only a thread of another CPU could end the wait, and none can run: the livelock
// bound reports it).
void rt_spinwait() {
  Runtime::Impl* rt = g_impl;
  if (rt == nullptr || rt->cur == nullptr || drain_point(rt)) return;
  DetThread* t = rt->cur;
  rt->step_accesses = 0;
  if (++rt->steps > rt->cfg.max_steps) {
    rt->fail(Outcome::kLivelock,
             stable_title("livelock", "busy-wait did not end"), "livelock in a busy-wait");
    rt->reschedule(true);
    return;
  }
  rt->update_pin(t);
  t->yielded_at = rt->epoch;
  t->spun_at = rt->steps;
  DetThread* other = rt->pick_other(t);
  if (other == nullptr || other == t) return;
  rt->next_pick = other;
  Fiber::Switch(&*t->fiber, rt->main.get());
  if (rt->killing) throw FiberKilled{};
}

void rt_crit_exit_pending() {
  Runtime::Impl* rt = g_impl;
  if (rt == nullptr || rt->cur == nullptr || drain_point(rt)) return;
  if (rt->cur->td.td_critcount == 0) rt->reschedule(false, __builtin_return_address(0));
}

void rt_spin_contested(spinlock* spin) {
  Runtime::Impl* rt = g_impl;
  thread* td = curthread_tls;
  if (spin->holder.load(std::memory_order_relaxed) == td)
    check_failed("spinlock-recursion", "%s taken twice by %s", spin->name, td->td_name);
  if (rt == nullptr || rt->cur == nullptr)
    panic("spin_lock: %s contested outside a run", spin->name);
  DetThread* t = rt->cur;
  int expect = 0;
  while (!spin->lock.compare_exchange_strong(expect, 1, std::memory_order_acquire)) {
    expect = 0;
    if (drain_point(rt)) return;
    t->state = DetThread::kBlocked;
    t->spin_wait = spin;
    rt->spin_blocked++;
    td->td_wmesg = spin->name;
    rt->note([&] { return "spin " + t->name + " on " + spin->name; });
    rt->reschedule(true);
  }
  td->td_wmesg = nullptr;
}

void rt_spin_released(spinlock* spin) {
  Runtime::Impl* rt = g_impl;
  if (rt == nullptr || rt->spin_blocked == 0) return;
  for (auto& up : rt->threads) {
    if (up->state == DetThread::kBlocked && up->spin_wait == spin) {
      up->state = DetThread::kRunnable;
      up->spin_wait = nullptr;
      rt->spin_blocked--;
    }
  }
}

int tsleep(const void* chan, const char* wmesg, int /*timo*/) {
  Runtime::Impl* rt = g_impl;
  thread* td = curthread_tls;
  if (rt == nullptr || rt->cur == nullptr) panic("tsleep(%s) outside a kernel thread", wmesg);
  if (drain_point(rt)) return 0;
  // Who slept, in a title: a daemon by name, any other thread as what it is, as the
  // deadlock titles count them (one bug, one title, whichever CPU ran into it).
  const char* who = rt->cur->daemon ? td->td_name : td->td_intr ? "an interrupt" : "a CPU thread";
  if (td->td_nosleep)
    check_failed("nowait-blocked", "a no-wait allocation reached tsleep(%s) in %s", wmesg, who);
  if (td->td_intr) check_failed("sleep-in-interrupt", "tsleep(%s) in an interrupt", wmesg);
  if (td->td_spincount)
    check_failed("sleep-with-spinlock", "tsleep(%s) holding a spinlock in %s", wmesg, who);
  if (td->td_critcount)
    check_failed("sleep-in-critical-section", "tsleep(%s) in %s", wmesg, who);
  DetThread* t = rt->cur;
  t->state = DetThread::kBlocked;
  t->wchan = chan;
  td->td_wmesg = wmesg;
  td->td_wchan = chan;
  rt->note([&] { return "sleep " + t->name + " on " + wmesg; });
  rt->reschedule(true);
  td->td_wmesg = nullptr;
  td->td_wchan = nullptr;
  return 0;
}

static void wake(const void* chan, bool one) {
  Runtime::Impl* rt = g_impl;
  if (rt == nullptr) return;
  for (auto& up : rt->threads) {
    if (up->state == DetThread::kBlocked && up->spin_wait == nullptr && up->wchan == chan) {
      up->state = DetThread::kRunnable;
      up->wchan = nullptr;
      if (one) return;
    }
  }
}

void wakeup(const void* chan) { wake(chan, false); }
void wakeup_one(const void* chan) { wake(chan, true); }

void rt_panic(const std::string& title, const std::string& message) {
  Runtime::Impl* rt = g_impl;
  // A draining thread may meet the state the failure left: it is unwound all the same.
  if (rt != nullptr && rt->cur != nullptr) drain_point(rt);
  if (rt == nullptr || rt->cur == nullptr || rt->killing) {
    fprintf(stderr, "%s\n%s\n", title.c_str(), message.c_str());
    abort();
  }
  rt->fail(Outcome::kPanic, title, message);
  rt->note([&] { return "panic in " + rt->cur->name + ": " + title; });
  throw FiberKilled{};
}

// ---- shared accesses -------------------------------------------------------------------
//
// SanitizerCoverage's load and store callbacks (-fsanitize-coverage=trace-loads,
// trace-stores, on the code under test only: fuzzers/coverage.bzl), called before each
// access with its address. Outside a run, in set-up (run_on_cpu0), while fibers are
// unwound, and for the running thread's own stack, descriptor and curthread pointer
// they do nothing.
namespace {
__attribute__((always_inline)) inline void on_access(const void* p, bool store,
                                                     const void* site) {
  DetThread* t = g_accessor;
  if (t == nullptr) return;
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (a - t->stack_lo < t->stack_bytes) return;
  if (a - reinterpret_cast<uintptr_t>(&t->td) < sizeof(thread)) return;
  if (p == &curthread_tls) return;
  if (t->td.td_nocount != 0) return;  // the simulation's bookkeeping (kenv::uncounted)
  g_impl->access(t, a, store, site);
}
}  // namespace

}  // namespace kenv

// Named by the access's size in bytes; the address is all they use.
#define KENV_ACCESS_HOOK(kind, bytes, store)                                      \
  extern "C" void __sanitizer_cov_##kind##bytes(void* p) {                        \
    kenv::on_access(p, store, __builtin_return_address(0));                       \
  }
KENV_ACCESS_HOOK(load, 1, false)
KENV_ACCESS_HOOK(load, 2, false)
KENV_ACCESS_HOOK(load, 4, false)
KENV_ACCESS_HOOK(load, 8, false)
KENV_ACCESS_HOOK(load, 16, false)
KENV_ACCESS_HOOK(store, 1, true)
KENV_ACCESS_HOOK(store, 2, true)
KENV_ACCESS_HOOK(store, 4, true)
KENV_ACCESS_HOOK(store, 8, true)
KENV_ACCESS_HOOK(store, 16, true)
