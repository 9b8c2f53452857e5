// threaded_runtime.cc - the threaded runtime: M OS threads over N virtual CPUs, for
// stress drivers and benchmarks.
//
// Guarantees:
//  - a thread owns exactly one virtual CPU while it runs kernel code, and no two
//    threads own the same CPU: per-CPU data touched inside a critical section is never
//    touched concurrently (the property the allocators' per-CPU caches rely on);
//  - a thread may migrate (release its CPU and take another) only at a preemption point
//    outside a critical section, with chance 1/migrate_one_in; it releases its CPU while
//    it sleeps;
//  - interrupts posted to a CPU run on the thread that owns it, at a preemption point or
//    crit_exit() outside a critical section, or on the runtime's own loop if the CPU is
//    idle; an interrupt never sleeps and is never migrated;
//  - tsleep() really sleeps (bounded by 10 ms, so that a lost wakeup only delays), and
//    a watchdog fails the run when rt_progress() has not been called for watchdog_ms;
//  - at the shared accesses of the code under test (the callbacks the deterministic
//    runtime switches at) a thread now and then waits a little (KRACE's delay
//    injection, 1 in delay_one_in accesses on average): a race window of a few
//    instructions stays open long enough for another CPU to enter it.
// A panic prints its title, the message, the driver's reproduction note
// (set_failure_note) and every thread's state, then aborts. A fatal signal in a run (a
// segfault, an abort from elsewhere) prints a "slabfuzz: crash:" title and the note
// first, then goes on to the handler that was there before (the sanitizers').
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/kenv_internal.h"
#include "allocator/kenv/runtime.h"

namespace kenv {

namespace {

struct ThreadStop {};

struct TThread {
  thread td{};
  std::string name;
  int start_cpu = 0;
  bool daemon = false;
  std::function<void()> fn;
  std::thread os;
  std::atomic<bool> done{false};
  std::atomic<const char*> waiting{nullptr};
  uint64_t rng = 0;
  int cpu = -1;
  uint32_t delay_in = 1;  // shared accesses until the next injected delay
};

std::string g_failure_note;           // how to run this again (the driver's words)
std::atomic<bool> g_titled{false};    // a title was printed: a signal adds none

Runtime* g_runtime = nullptr;

}  // namespace

class Runtime::Impl {
 public:
  explicit Impl(const RuntimeConfig& c) : cfg(c) {
    init_cpus(cfg, gd);
    for (int i = 0; i < MAXCPU; i++) {
      owner[i].store(nullptr);
      intr_td[i].td_gd = &gd[i];
      intr_td[i].td_intr = 1;
      intr_td[i].td_name = "interrupt";
    }
    idle.name = "idle";
    idle.td.td_name = "idle";
  }

  RuntimeConfig cfg;
  globaldata gd[MAXCPU];
  std::atomic<TThread*> owner[MAXCPU];
  thread intr_td[MAXCPU]{};
  std::mutex intr_mu;
  std::deque<std::function<void()>> intr_q[MAXCPU];
  std::vector<std::unique_ptr<TThread>> threads;
  TThread idle;
  std::mutex sleep_mu;
  std::condition_variable sleep_cv;
  uint64_t wake_gen = 0;
  std::atomic<uint64_t> progress{0};
  std::atomic<bool> stopping{false};
  bool abandoned = false;  // the watchdog left stuck threads running

  static uint64_t next_rand(uint64_t& s) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }

  void acquire_cpu(TThread* t, int preferred) {
    for (;;) {
      for (int i = 0; i < cfg.ncpus; i++) {
        int c = (preferred + i) % cfg.ncpus;
        TThread* expect = nullptr;
        if (owner[c].load(std::memory_order_relaxed) == nullptr &&
            owner[c].compare_exchange_strong(expect, t, std::memory_order_acquire)) {
          t->cpu = c;
          t->td.td_gd = &gd[c];
          return;
        }
      }
      std::this_thread::yield();
    }
  }

  void release_cpu(TThread* t) {
    int c = t->cpu;
    t->cpu = -1;
    owner[c].store(nullptr, std::memory_order_release);
  }

  // Runs the interrupts pending on cpu c; the caller owns c, outside a critical section.
  void deliver_interrupts(int c) {
    while (gd[c].gd_ipending.load(std::memory_order_acquire) > 0) {
      std::function<void()> fn;
      {
        std::lock_guard<std::mutex> g(intr_mu);
        if (intr_q[c].empty()) return;
        fn = std::move(intr_q[c].front());
        intr_q[c].pop_front();
      }
      thread* saved = curthread_tls;
      curthread_tls = &intr_td[c];
      fn();
      if (intr_td[c].td_critcount != 0 || intr_td[c].td_spincount != 0)
        check_failed("interrupt-leaked-lock", "interrupt on cpu%d returned in a critical section", c);
      curthread_tls = saved;
      gd[c].gd_ipending.fetch_sub(1, std::memory_order_release);
    }
  }

  void body(TThread* t) {
    curthread_tls = &t->td;
    acquire_cpu(t, t->start_cpu);
    try {
      deliver_interrupts(t->cpu);
      t->fn();
    } catch (const ThreadStop&) {
    }
    if (t->cpu >= 0) release_cpu(t);
    curthread_tls = nullptr;
    t->done.store(true, std::memory_order_release);
    progress.fetch_add(1, std::memory_order_relaxed);
  }

  std::string state_report() {
    std::string r;
    char line[256];
    for (auto& up : threads) {
      TThread* t = up.get();
      if (t->done.load()) continue;
      const char* w = t->waiting.load();
      snprintf(line, sizeof(line), "  thread %-16s %s%s%s\n", t->name.c_str(),
               w ? "waits on " : "running", w ? w : "", t->daemon ? " (daemon)" : "");
      r += line;
    }
    return r;
  }
};

namespace {
Runtime::Impl* g_impl = nullptr;
thread_local TThread* t_self = nullptr;

// A fatal signal: one title line and the note (async-signal-safe writes only), then
// the handler that was there before runs (for a fault, when the instruction runs
// again; for an abort, raised anew).
constexpr int kFatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
struct sigaction g_old_action[NSIG];
char g_note_buf[1024];
size_t g_note_len = 0;

void crash_signal(int sig) {
  if (!g_titled.exchange(true)) {
    const char* name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS"
                       : sig == SIGFPE ? "SIGFPE" : sig == SIGILL ? "SIGILL" : "SIGABRT";
    auto put = [](const char* p, size_t n) { (void)!write(2, p, n); };
    put("slabfuzz: crash: ", 17);
    put(name, strlen(name));
    put(" in a threaded run\n", 19);
    if (g_note_len > 0) put(g_note_buf, g_note_len);
  }
  sigaction(sig, &g_old_action[sig], nullptr);
  if (sig == SIGABRT) raise(sig);
}

void install_crash_titles() {
  static bool done = false;
  if (done) return;
  done = true;
  for (int sig : kFatal) {
    struct sigaction sa = {};
    sa.sa_handler = crash_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_ONSTACK;
    sigaction(sig, &sa, &g_old_action[sig]);
  }
}
}  // namespace

Runtime::Runtime(const RuntimeConfig& config) : impl_(std::make_unique<Impl>(config)) {
  if (g_runtime != nullptr) {
    fprintf(stderr, "slabfuzz: runtime: two runtimes alive at once\n");
    abort();
  }
  g_runtime = this;
  g_impl = impl_.get();
  install_crash_titles();
}

Runtime::~Runtime() {
  g_runtime = nullptr;
  if (impl_->abandoned) {
    // Threads the watchdog gave up on may still run on it: keep it alive, reachable.
    static auto* abandoned = new std::vector<std::unique_ptr<Impl>>;
    abandoned->push_back(std::move(impl_));
    return;
  }
  g_impl = nullptr;
}

Runtime* current_runtime() { return g_runtime; }
int ncpus() { return g_impl ? g_impl->cfg.ncpus : 1; }

void Runtime::spawn(int cpu, std::string name, std::function<void()> fn, bool daemon) {
  auto t = std::make_unique<TThread>();
  t->name = std::move(name);
  t->td.td_name = t->name.c_str();
  t->start_cpu = cpu % impl_->cfg.ncpus;
  t->daemon = daemon;
  t->fn = std::move(fn);
  t->rng = impl_->cfg.seed * 0x9e3779b97f4a7c15ULL + impl_->threads.size() * 7919 + 1;
  t->td.td_runtime = t.get();
  impl_->threads.push_back(std::move(t));
}

void Runtime::post_interrupt(int cpu, std::function<void()> fn) {
  Impl* rt = impl_.get();
  std::lock_guard<std::mutex> g(rt->intr_mu);
  rt->intr_q[cpu].push_back(std::move(fn));
  rt->gd[cpu].gd_ipending.fetch_add(1, std::memory_order_release);
}

Outcome Runtime::run() {
  Impl* rt = impl_.get();
  Outcome out;
  rt->stopping.store(false);
  for (auto& up : rt->threads) {
    TThread* t = up.get();
    t->os = std::thread([rt, t] {
      t_self = t;
      rt->body(t);
    });
  }
  auto last_change = std::chrono::steady_clock::now();
  uint64_t last_progress = rt->progress.load();
  for (;;) {
    bool live = false;
    for (auto& up : rt->threads)
      if (!up->daemon && !up->done.load(std::memory_order_acquire)) live = true;
    if (!live) break;
    // Interrupts on idle CPUs run here.
    for (int c = 0; c < rt->cfg.ncpus; c++) {
      if (rt->gd[c].gd_ipending.load() == 0) continue;
      TThread* expect = nullptr;
      if (rt->owner[c].compare_exchange_strong(expect, &rt->idle)) {
        rt->idle.cpu = c;
        rt->deliver_interrupts(c);
        rt->owner[c].store(nullptr, std::memory_order_release);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    uint64_t p = rt->progress.load();
    auto now = std::chrono::steady_clock::now();
    if (p != last_progress) {
      last_progress = p;
      last_change = now;
    } else if (now - last_change > std::chrono::milliseconds(rt->cfg.watchdog_ms)) {
      out.kind = Outcome::kWatchdog;
      out.title = stable_title("watchdog", "no progress for " + std::to_string(rt->cfg.watchdog_ms) +
                                               " ms");
      out.report = rt->state_report();
      // Stuck threads cannot be joined: they keep running on this Impl, which is
      // therefore never freed (see ~Runtime); the caller reports and exits.
      for (auto& up : rt->threads) up->os.detach();
      rt->abandoned = true;
      return out;
    }
  }
  // Interrupts still pending run now, before run() returns: nothing posted is lost.
  for (int c = 0; c < rt->cfg.ncpus; c++) {
    while (rt->gd[c].gd_ipending.load() != 0) {
      TThread* expect = nullptr;
      if (rt->owner[c].compare_exchange_strong(expect, &rt->idle)) {
        rt->idle.cpu = c;
        rt->deliver_interrupts(c);
        rt->owner[c].store(nullptr, std::memory_order_release);
      } else {
        std::this_thread::yield();  // a daemon holds the CPU for a moment
      }
    }
  }
  rt->stopping.store(true);
  {
    std::lock_guard<std::mutex> g(rt->sleep_mu);
    rt->wake_gen++;
  }
  rt->sleep_cv.notify_all();
  for (auto& up : rt->threads) up->os.join();
  rt->threads.clear();
  return out;
}

Outcome Runtime::run_on_cpu0(std::function<void()> fn) {
  spawn(0, "setup", std::move(fn), false);
  return run();
}

void Runtime::preempt_after(int /*n*/, int /*accesses*/) {}

void Runtime::post_interrupt_after(int cpu, int /*n*/, std::function<void()> fn) {
  post_interrupt(cpu, std::move(fn));
}

void Runtime::post_interrupt_at_access(int cpu, int /*accesses*/, std::function<void()> fn) {
  post_interrupt(cpu, std::move(fn));
}

const std::vector<std::string>& Runtime::trace() const {
  static const std::vector<std::string> empty;
  return empty;
}

// ---- kernel primitives' slow paths ------------------------------------------------

void rt_progress() {
  if (g_impl) g_impl->progress.fetch_add(1, std::memory_order_relaxed);
}

void rt_preempt() {
  Runtime::Impl* rt = g_impl;
  TThread* t = t_self;
  thread* td = curthread_tls;
  if (rt == nullptr || t == nullptr || td != &t->td || td->td_critcount != 0) return;
  rt->deliver_interrupts(t->cpu);
  if (rt->cfg.migrate_one_in > 0 &&
      Runtime::Impl::next_rand(t->rng) % rt->cfg.migrate_one_in == 0) {
    int to = static_cast<int>(Runtime::Impl::next_rand(t->rng) % rt->cfg.ncpus);
    rt->release_cpu(t);
    std::this_thread::yield();
    rt->acquire_cpu(t, to);
    rt->deliver_interrupts(t->cpu);
  }
}

void rt_crit_exit_pending() {
  Runtime::Impl* rt = g_impl;
  TThread* t = t_self;
  if (rt == nullptr || t == nullptr || curthread_tls != &t->td) return;
  rt->deliver_interrupts(t->cpu);
}

void rt_spin_contested(spinlock* spin) {
  thread* td = curthread_tls;
  if (spin->holder.load(std::memory_order_relaxed) == td)
    check_failed("spinlock-recursion", "%s taken twice by %s", spin->name, td->td_name);
  int expect = 0;
  unsigned spins = 0;
  while (!spin->lock.compare_exchange_weak(expect, 1, std::memory_order_acquire)) {
    expect = 0;
    if (++spins % 64 == 0) std::this_thread::yield();
    else __builtin_ia32_pause();
  }
}

void rt_spin_released(spinlock*) {}

void rt_spinwait() { __builtin_ia32_pause(); }

int tsleep(const void* chan, const char* wmesg, int timo) {
  Runtime::Impl* rt = g_impl;
  TThread* t = t_self;
  thread* td = curthread_tls;
  if (rt == nullptr || t == nullptr) panic("tsleep(%s) outside a kernel thread", wmesg);
  if (td->td_nosleep)
    check_failed("nowait-blocked", "a no-wait allocation reached tsleep(%s) in %s", wmesg,
                 td->td_name);
  if (td->td_intr) check_failed("sleep-in-interrupt", "tsleep(%s) in an interrupt", wmesg);
  if (td->td_spincount)
    check_failed("sleep-with-spinlock", "tsleep(%s) holding a spinlock in %s", wmesg,
                 td->td_name);
  if (td->td_critcount)
    check_failed("sleep-in-critical-section", "tsleep(%s) in %s", wmesg, td->td_name);
  // A daemon ends only in its idle wait, holding nothing (never in the middle of work).
  if (rt->stopping.load() && t->daemon && td->td_idle) throw ThreadStop{};
  (void)chan;
  int cpu = t->cpu;
  rt->release_cpu(t);
  t->waiting.store(wmesg);
  td->td_wmesg = wmesg;
  int ms = timo > 0 ? timo : 10;
  if (ms > 10) ms = 10;
  {
    std::unique_lock<std::mutex> lk(rt->sleep_mu);
    uint64_t gen = rt->wake_gen;
    rt->sleep_cv.wait_for(lk, std::chrono::milliseconds(ms),
                          [&] { return rt->wake_gen != gen; });
  }
  t->waiting.store(nullptr);
  td->td_wmesg = nullptr;
  rt->acquire_cpu(t, cpu);
  rt->deliver_interrupts(t->cpu);
  if (rt->stopping.load() && t->daemon && td->td_idle) throw ThreadStop{};
  return 0;
}

void wakeup(const void*) {
  Runtime::Impl* rt = g_impl;
  if (rt == nullptr) return;
  {
    std::lock_guard<std::mutex> g(rt->sleep_mu);
    rt->wake_gen++;
  }
  rt->sleep_cv.notify_all();
}

void wakeup_one(const void* chan) { wakeup(chan); }

void set_failure_note(const std::string& note) {
  g_failure_note = note;
  g_note_len = std::min(note.size(), sizeof(g_note_buf) - 1);
  memcpy(g_note_buf, note.data(), g_note_len);
  if (g_note_len > 0) g_note_buf[g_note_len++] = '\n';
}

void rt_panic(const std::string& title, const std::string& message) {
  g_titled = true;
  fprintf(stderr, "%s\n%s\n", title.c_str(), message.c_str());
  if (!g_failure_note.empty()) fprintf(stderr, "%s\n", g_failure_note.c_str());
  if (g_impl) fprintf(stderr, "%s", g_impl->state_report().c_str());
  fflush(stderr);
  abort();
}

}  // namespace kenv

// ---- delay injection at shared accesses -------------------------------------------

namespace kenv {
namespace {
__attribute__((always_inline)) inline void on_access() {
  TThread* t = t_self;
  if (t == nullptr || --t->delay_in != 0) return;
  Runtime::Impl* rt = g_impl;
  int every = rt != nullptr ? rt->cfg.delay_one_in : 0;
  if (every <= 0) {
    t->delay_in = UINT32_MAX;
    return;
  }
  uint64_t r = Runtime::Impl::next_rand(t->rng);
  t->delay_in = 1 + static_cast<uint32_t>(r % (2 * static_cast<uint64_t>(every)));
  // Mostly a short spin (a window of a few hundred cycles), now and then the rest of
  // the time slice.
  if ((r >> 32) % 16 == 0) {
    std::this_thread::yield();
  } else {
    for (uint64_t i = (r >> 40) % 512; i > 0; i--) __builtin_ia32_pause();
  }
}
}  // namespace
}  // namespace kenv

// Named by the access's size in bytes, as SanitizerCoverage calls them.
#define KENV_ACCESS_HOOK(kind, bytes) \
  extern "C" void __sanitizer_cov_##kind##bytes(void*) { kenv::on_access(); }
KENV_ACCESS_HOOK(load, 1)
KENV_ACCESS_HOOK(load, 2)
KENV_ACCESS_HOOK(load, 4)
KENV_ACCESS_HOOK(load, 8)
KENV_ACCESS_HOOK(load, 16)
KENV_ACCESS_HOOK(store, 1)
KENV_ACCESS_HOOK(store, 2)
KENV_ACCESS_HOOK(store, 4)
KENV_ACCESS_HOOK(store, 8)
KENV_ACCESS_HOOK(store, 16)
