// kenv_common.cc - the parts of the simulated kernel both runtimes share: the boot
// phase, panic() formatting and crash titles.
//
// Invariants: the boot phase only moves forward within one kernel's life
// (boot_reset() starts a new one); a crash title never contains an address or a
// count (addresses become ADDR, standalone numbers N), so that crashes deduplicate
// by title.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/kenv_internal.h"
#include "allocator/kenv/runtime.h"

#ifdef SLABFUZZ_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace kenv {

constinit thread_local thread* curthread_tls = nullptr;

namespace {
std::atomic<int> g_boot_phase{static_cast<int>(boot_phase::RUNNING)};
}  // namespace

boot_phase current_boot_phase() {
  return static_cast<boot_phase>(g_boot_phase.load(std::memory_order_acquire));
}

void boot_reset(boot_phase p) {
  g_boot_phase.store(static_cast<int>(p), std::memory_order_release);
}

void boot_advance(boot_phase to) {
  int cur = g_boot_phase.load(std::memory_order_acquire);
  while (cur < static_cast<int>(to) &&
         !g_boot_phase.compare_exchange_weak(cur, static_cast<int>(to))) {
  }
  wakeup(&g_boot_phase);
}


void init_cpus(const RuntimeConfig& cfg, globaldata* gd) {
  if (cfg.ncpus < 1 || cfg.ncpus > MAXCPU) {
    fprintf(stderr, "slabfuzz: config: ncpus must be 1..%d, got %d\n", MAXCPU, cfg.ncpus);
    exit(2);
  }
  for (int i = 0; i < MAXCPU; i++) {
    gd[i].gd_cpuid = i;
    gd[i].gd_ipending.store(0);
  }
}

const char* boot_phase_name(boot_phase p) {
  switch (p) {
    case boot_phase::EARLY: return "EARLY";
    case boot_phase::VM_READY: return "VM_READY";
    case boot_phase::SMP: return "SMP";
    case boot_phase::RUNNING: return "RUNNING";
  }
  return "?";
}

const char* outcome_kind_name(Outcome::Kind k) {
  switch (k) {
    case Outcome::kOk: return "ok";
    case Outcome::kPanic: return "panic";
    case Outcome::kDeadlock: return "deadlock";
    case Outcome::kLivelock: return "livelock";
    case Outcome::kWatchdog: return "watchdog";
  }
  return "?";
}

namespace {
bool is_word_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
}  // namespace

std::string stable_title(const std::string& check, const std::string& detail) {
  // Addresses and counts change from run to run; names (cpu0, TEST1) do not. First
  // every "0x<hex digits>" becomes ADDR, then every whole word of decimal digits
  // becomes N (a scanner: titles are made for every expected panic a fuzzer provokes).
  std::string a;
  a.reserve(detail.size());
  for (size_t i = 0; i < detail.size();) {
    if (detail[i] == '0' && i + 2 < detail.size() && detail[i + 1] == 'x' &&
        is_hex_digit(detail[i + 2])) {
      i += 2;
      while (i < detail.size() && is_hex_digit(detail[i])) i++;
      a += "ADDR";
    } else {
      a += detail[i++];
    }
  }
  std::string d = "slabfuzz: " + check + ": ";
  d.reserve(d.size() + a.size());
  for (size_t i = 0; i < a.size();) {
    bool starts_word = i == 0 || !is_word_char(a[i - 1]);
    if (starts_word && a[i] >= '0' && a[i] <= '9') {
      size_t j = i;
      while (j < a.size() && a[j] >= '0' && a[j] <= '9') j++;
      if (j == a.size() || !is_word_char(a[j])) {
        d += 'N';
        i = j;
        continue;
      }
      d.append(a, i, j - i);  // digits that run into a word (9lives) stay
      i = j;
      continue;
    }
    // A title is one line.
    d += a[i] == '\n' ? ' ' : a[i];
    i++;
  }
  return d;
}

void panic(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  rt_panic(stable_title("panic", buf), buf);
}

void check_failed(const char* check, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  rt_panic(stable_title(check, buf), buf);
}

// ---- recycled host memory for kernel structures (host_obj_alloc) ----

namespace {
std::mutex g_host_obj_mtx;
// Per size: the blocks freed, last freed last. Never shrunk: bounded by the most
// structures of a size alive at once.
// Both never destroyed (LeakSanitizer looks after the static destructors have run):
// every block ever made is the process's for good, recycled, never freed, and a
// structure the last run left alive is not a leak.
auto& g_host_obj_free = *new std::vector<std::pair<size_t, std::vector<void*>>>;
auto& g_host_obj_all = *new std::vector<void*>;

std::vector<void*>& host_obj_list(size_t size) {
  for (auto& [sz, list] : g_host_obj_free)
    if (sz == size) return list;
  g_host_obj_free.emplace_back(size, std::vector<void*>());
  return g_host_obj_free.back().second;
}
}  // namespace

KENV_NO_COVERAGE void* host_obj_alloc(size_t size) {
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> g(g_host_obj_mtx);
    std::vector<void*>& list = host_obj_list(size);
    if (!list.empty()) {
      p = list.back();
      list.pop_back();
    }
  }
  if (p == nullptr) {
    p = ::operator new(size);
    std::lock_guard<std::mutex> g(g_host_obj_mtx);
    g_host_obj_all.push_back(p);
    return p;
  }
#ifdef SLABFUZZ_HAVE_ASAN
  __asan_unpoison_memory_region(p, size);
#endif
  return p;
}

KENV_NO_COVERAGE void host_obj_free(void* p, size_t size) {
  if (p == nullptr) return;
#ifdef SLABFUZZ_HAVE_ASAN
  __asan_poison_memory_region(p, size);
#endif
  std::lock_guard<std::mutex> g(g_host_obj_mtx);
  host_obj_list(size).push_back(p);
}

}  // namespace kenv

// Outside the fuzzing builds the code under test carries an edge mode that the load and
// store callbacks (the runtimes' interleavings, see fuzzers/coverage.bzl) need beside
// them: inline 8-bit counters, which nothing reads, and under TSan trace-pc-guard
// callbacks, which do nothing. A fuzzing engine linked in brings its own, which take
// precedence.
extern "C" __attribute__((weak)) void __sanitizer_cov_8bit_counters_init(uint8_t*, uint8_t*) {}
extern "C" __attribute__((weak)) void __sanitizer_cov_trace_pc_guard_init(uint32_t*, uint32_t*) {}
extern "C" __attribute__((weak)) void __sanitizer_cov_trace_pc_guard(uint32_t*) {}
