// torture.cc - the stress scenarios (see torture.h).
//
// Each worker is a kernel thread of the threaded runtime. Objects carry a pattern
// (address, serial, owner) in their first and last words, written at allocation and
// checked by whoever frees them. Cross-thread hand-offs go through small mutex-guarded
// inboxes that are test scaffolding, never held across kernel calls.
#include "stress/torture.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_set>

#include "allocator/backend/backend.h"
#include "allocator/kenv/kenv.h"
#include "allocator/kenv/malloc.h"
#include "allocator/kenv/page_source.h"
#include "allocator/kenv/runtime.h"
#include "allocator/vm/vm.h"

namespace slabfuzz {

namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::string> kScenarios = {"percpu", "remote-free", "reserve", "boot",
                                             "pageout", "interrupts", "migrate", "mixed"};

// Log-linear latency histogram: 8 sub-buckets per power of two, up to ~1 s.
class Histogram {
 public:
  void add(uint64_t ns) {
    int b = bucket(ns);
    counts_[b]++;
    n_++;
    max_ = std::max(max_, ns);
  }
  void merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; i++) counts_[i] += o.counts_[i];
    n_ += o.n_;
    max_ = std::max(max_, o.max_);
  }
  Percentiles percentiles() const {
    Percentiles p;
    p.p50 = at(0.5);
    p.p99 = at(0.99);
    p.p999 = at(0.999);
    p.max = static_cast<double>(max_);
    return p;
  }

 private:
  static constexpr int kBuckets = 31 * 8;
  static int bucket(uint64_t ns) {
    if (ns < 8) return static_cast<int>(ns);
    int lg = 63 - __builtin_clzll(ns);
    int sub = static_cast<int>((ns >> (lg - 3)) & 7);
    return std::min(kBuckets - 1, (lg - 2) * 8 + sub);
  }
  static double lower(int b) {
    if (b < 8) return b;
    int lg = b / 8 + 2;
    return static_cast<double>((uint64_t{8} + static_cast<uint64_t>(b % 8)) << (lg - 3));
  }
  double at(double q) const {
    if (n_ == 0) return 0;
    uint64_t want = static_cast<uint64_t>(q * static_cast<double>(n_));
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; i++) {
      seen += counts_[i];
      if (seen > want) return lower(i);
    }
    return static_cast<double>(max_);
  }
  uint64_t counts_[kBuckets] = {};
  uint64_t n_ = 0;
  uint64_t max_ = 0;
};

struct Held {
  void* obj;
  int zone;
};

class Rng {
 public:
  explicit Rng(uint64_t s) : s_(s * 0x9e3779b97f4a7c15ULL + 1) {}
  uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }

 private:
  uint64_t s_;
};

struct Inbox {
  std::mutex mu;
  std::vector<Held> items;
};

// Every object handed out and not yet freed, by address, in shards under their own
// locks (test scaffolding, never held across a kernel call).
class LiveSet {
 public:
  // False if addr was live already.
  bool insert(void* addr) {
    Shard& s = shard(addr);
    std::lock_guard<std::mutex> g(s.mu);
    return s.set.insert(reinterpret_cast<uintptr_t>(addr)).second;
  }
  // False if addr was not live.
  bool erase(void* addr) {
    Shard& s = shard(addr);
    std::lock_guard<std::mutex> g(s.mu);
    return s.set.erase(reinterpret_cast<uintptr_t>(addr)) == 1;
  }

 private:
  struct alignas(64) Shard {
    std::mutex mu;
    std::unordered_set<uintptr_t> set;
  };
  Shard& shard(void* addr) {
    return shards_[(reinterpret_cast<uintptr_t>(addr) >> 4) * 0x9e3779b97f4a7c15ULL >> 58];
  }
  Shard shards_[64];
};

class Torture {
 public:
  explicit Torture(const TortureOptions& o)
      : o_(o), b_(make_backend(o.backend)), inboxes_(static_cast<size_t>(o.threads)) {}
  TortureResult run();

 private:
  enum Zone { kTest64, kTest256, kPv, kMap, kSwap, kNumZones };
  struct Worker {
    int id = 0;
    Rng rng{1};
    std::vector<Held> held;
    Histogram alloc_h, free_h;
    uint64_t ops = 0;
    uint64_t serial = 0;
    int last_cpu = -1;
    uint64_t next_serial() { return (static_cast<uint64_t>(id + 1) << 40) | ++serial; }
  };
  // Per-CPU counters on their own cache lines: shared counters would be the
  // bottleneck of the per-CPU scenario, not the allocator.
  struct alignas(64) CpuCount {
    std::atomic<uint64_t> n{0};
  };

  void* zone(int z) const { return zones_[z]; }
  size_t size_of(int z) const { return sizes_[z]; }
  void* alloc(Worker& w, int z, int flags);
  void release(Worker& w, const Held& h);
  void stamp(void* obj, size_t size, uint64_t serial);
  void verify(void* obj, size_t size, int z);
  void step(Worker& w, const std::string& sc);
  void step_percpu(Worker& w);
  void step_remote(Worker& w);
  void step_reserve(Worker& w);
  void step_boot(Worker& w);
  void step_pageout(Worker& w);
  std::string memory_report();
  void step_interrupts(Worker& w);
  void worker(int id);
  void setup();
  void teardown();

  TortureOptions o_;
  std::unique_ptr<Backend> b_;
  std::unique_ptr<Vm> vm_;
  void* zones_[kNumZones] = {};
  size_t sizes_[kNumZones] = {};
  std::vector<Inbox> inboxes_;
  Inbox from_intr_;
  LiveSet live_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<uint64_t> serial_{0};
  CpuCount ops_per_cpu_[kenv::MAXCPU];
  std::atomic<uint64_t> reserve_failures_{0}, pressure_cycles_{0}, interrupts_{0},
      migrations_{0}, boot_cycles_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> pressured_{0};
  Clock::time_point deadline_;
  kenv::Runtime* rt_ = nullptr;
  char poll_chan_ = 0;
};

void Torture::stamp(void* obj, size_t size, uint64_t serial) {
  auto a = reinterpret_cast<uint64_t>(obj);
  uint64_t w0 = a ^ 0x5a5a5a5a5a5a5a5aULL, w1 = serial, wl = a * 31 + serial;
  auto* p = static_cast<char*>(obj);
  memcpy(p, &w0, 8);
  memcpy(p + 8, &w1, 8);
  memcpy(p + size - 8, &wl, 8);
}

void Torture::verify(void* obj, size_t size, int z) {
  auto a = reinterpret_cast<uint64_t>(obj);
  const auto* p = static_cast<const char*>(obj);
  uint64_t w0, w1, wl;
  memcpy(&w0, p, 8);
  memcpy(&w1, p + 8, 8);
  memcpy(&wl, p + size - 8, 8);
  if (w0 != (a ^ 0x5a5a5a5a5a5a5a5aULL) || wl != a * 31 + w1)
    kenv::check_failed("corruption", "zone %d: live object %p changed while held", z, obj);
}

void* Torture::alloc(Worker& w, int z, int flags) {
  auto t0 = Clock::now();
  void* obj = b_->alloc(zone(z), flags);
  if ((w.ops & 15) == 0)
    w.alloc_h.add(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
  if (obj == nullptr) {
    if (flags & M_USE_RESERVE) {
      ZoneStats st = b_->stats(zone(z));
      if (st.reserve_level > 1) reserve_failures_++;  // more than a racing peer could take
    }
    return nullptr;
  }
  if (!live_.insert(obj))
    kenv::check_failed("double-allocation", "zone %d: %p handed out while it is live", z, obj);
  stamp(obj, size_of(z), w.next_serial());
  return obj;
}

void Torture::release(Worker& w, const Held& h) {
  verify(h.obj, size_of(h.zone), h.zone);
  // Out of the set before the free: another CPU may get it back at once.
  if (!live_.erase(h.obj))
    kenv::check_failed("double-allocation", "zone %d: %p freed, but another holder has it",
                       h.zone, h.obj);
  auto t0 = Clock::now();
  b_->free(zone(h.zone), h.obj);
  if ((w.ops & 15) == 0)
    w.free_h.add(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
}

void Torture::step_percpu(Worker& w) {
  int z = w.rng.below(2) ? kTest64 : kTest256;
  if (w.held.size() < 64 && (w.held.empty() || w.rng.below(2))) {
    if (void* obj = alloc(w, z, M_WAITOK)) w.held.push_back({obj, z});
  } else {
    size_t i = w.rng.below(w.held.size());
    Held h = w.held[i];
    w.held[i] = w.held.back();
    w.held.pop_back();
    release(w, h);
  }
}

void Torture::step_remote(Worker& w) {
  // Produce into the next worker's inbox; consume (free) what arrived in our own.
  int z = w.rng.below(2) ? kTest64 : kTest256;
  if (void* obj = alloc(w, z, M_WAITOK)) {
    Inbox& next = inboxes_[static_cast<size_t>(w.id + 1) % inboxes_.size()];
    std::lock_guard<std::mutex> g(next.mu);
    next.items.push_back({obj, z});
  }
  std::vector<Held> mine;
  {
    Inbox& in = inboxes_[static_cast<size_t>(w.id)];
    std::lock_guard<std::mutex> g(in.mu);
    if (in.items.size() > 8) mine.swap(in.items);
  }
  for (const Held& h : mine) release(w, h);
}

void Torture::step_reserve(Worker& w) {
  if (w.id == 0) {
    // The pressure thread: memory comes and goes.
    size_t budget = o_.budget_pages;
    if (pressured_.load() == 0) {
      // reserve: everything that is free, so that only spare slabs can serve; in
      // mixed, user memory (down to the normal tier's floor), as in a real kernel.
      kenv::page_source_pressure(budget, o_.scenario == "reserve" ? kenv::VM_TIER_INTERRUPT
                                                                  : kenv::VM_TIER_NORMAL);
      pressured_ = 1;
    } else {
      // The memory hog frees it all: what of it went to swap goes too.
      vm_->anon_free(budget);
      kenv::page_source_relief(budget);
      pressured_ = 0;
      pressure_cycles_++;
    }
    kenv::tsleep(&pressured_, "pressure", 1);
    return;
  }
  // VM-side allocations must keep succeeding from the reserve; ordinary ones may fail.
  int z = w.rng.below(3) == 0 ? kSwap : kMap;
  if (w.held.size() < 16 && w.rng.below(2)) {
    int flags = w.rng.below(2) ? M_NOWAIT : (M_RNOWAIT | M_NULLOK);
    if (void* obj = alloc(w, z, flags)) w.held.push_back({obj, z});
  } else if (!w.held.empty()) {
    Held h = w.held.back();
    w.held.pop_back();
    release(w, h);
  }
}

void Torture::step_boot(Worker& w) {
  // A zone's whole life with boot memory: register, use, destroy; the memory is ours.
  size_t g = b_->boot_granule();
  if (g == 0) return step_percpu(w);
  void* mem = aligned_alloc(g, g);
  char name[32];
  snprintf(name, sizeof(name), "BOOT%d", w.id);
  void* zn = b_->zone_create({.name = name, .objsize = 128});
  b_->boot_memory(zn, mem, g);
  std::vector<void*> objs;
  int n = 16 + static_cast<int>(w.rng.below(64));
  for (int i = 0; i < n; i++) {
    void* obj = b_->alloc(zn, M_WAITOK);
    stamp(obj, 128, w.next_serial());
    objs.push_back(obj);
  }
  for (void* obj : objs) {
    verify(obj, 128, -1);
    b_->free(zn, obj);
  }
  b_->drain_cpu(zn);
  b_->zone_destroy(zn);
  free(mem);
  boot_cycles_++;
}

void Torture::step_pageout(Worker& w) {
  if (vm_->mapped_pages() < 64 || w.rng.below(3)) {
    vm_->fault(M_WAITOK);
  } else {
    vm_->unmap_one();
  }
}

void Torture::step_interrupts(Worker& w) {
  int target = static_cast<int>(w.rng.below(static_cast<uint64_t>(o_.cpus)));
  rt_->post_interrupt(target, [this] {
    void* obj = b_->alloc(zone(kTest64), M_INTNOWAIT);
    interrupts_++;
    if (obj == nullptr) return;
    if (!live_.insert(obj))
      kenv::check_failed("double-allocation", "zone %d: %p handed out while it is live",
                         static_cast<int>(kTest64), obj);
    stamp(obj, size_of(kTest64), ++serial_);
    std::lock_guard<std::mutex> g(from_intr_.mu);
    from_intr_.items.push_back({obj, kTest64});
  });
  std::vector<Held> got;
  {
    std::lock_guard<std::mutex> g(from_intr_.mu);
    if (from_intr_.items.size() > 16) got.swap(from_intr_.items);
  }
  for (const Held& h : got) release(w, h);
  step_percpu(w);
}

void Torture::step(Worker& w, const std::string& sc) {
  if (sc == "percpu" || sc == "migrate") return step_percpu(w);
  if (sc == "remote-free") return step_remote(w);
  if (sc == "reserve") return step_reserve(w);
  if (sc == "boot") return step_boot(w);
  if (sc == "pageout") return step_pageout(w);
  if (sc == "interrupts") return step_interrupts(w);
  // mixed: a bit of everything at once, worker 0 doubling as the pressure thread.
  switch (w.rng.below(6)) {
    case 0: return step_percpu(w);
    case 1: return step_remote(w);
    case 2: return step_reserve(w);
    case 3: return w.rng.below(16) ? step_percpu(w) : step_boot(w);
    case 4: return step_pageout(w);
    default: return step_interrupts(w);
  }
}

void Torture::worker(int id) {
  Worker& w = *workers_[static_cast<size_t>(id)];
  w.id = id;
  w.rng = Rng(o_.seed * 1000 + static_cast<uint64_t>(id));
  uint64_t budget = o_.max_ops ? o_.max_ops / static_cast<uint64_t>(o_.threads) + 1 : 0;
  for (;;) {
    if ((w.ops & 63) == 0 && (stop_.load(std::memory_order_relaxed) || Clock::now() > deadline_))
      break;
    if (budget && w.ops >= budget) break;
    step(w, o_.scenario);
    w.ops++;
    int cpu = kenv::mycpuid();
    if (cpu != w.last_cpu) {
      if (w.last_cpu >= 0) migrations_++;
      w.last_cpu = cpu;
    }
    ops_per_cpu_[cpu].n.fetch_add(1, std::memory_order_relaxed);
    if ((w.ops & 63) == 0) kenv::rt_progress();
    kenv::preempt_point();
  }
  if ((o_.scenario == "reserve" || o_.scenario == "mixed") && w.id == 0)
    kenv::page_source_relief(o_.budget_pages);
}

void Torture::setup() {
  VmOptions vo;
  // zalloc runs the VM zones as today's kernel does; the others with whatever of
  // boot memory and spare slabs they support.
  vo.mode = b_->name() == "zalloc" ? VmMode::kZalloc : VmMode::kReserved;
  vo.reserve = 2;
  vm_ = std::make_unique<Vm>(*b_, vo);
  zones_[kPv] = vm_->pv_zone();
  zones_[kMap] = vm_->map_zone();
  zones_[kSwap] = vm_->swap_zone();
  zones_[kTest64] = b_->zone_create({.name = "TEST64", .objsize = 64});
  zones_[kTest256] = b_->zone_create({.name = "TEST256", .objsize = 256});
  for (int z = 0; z < kNumZones; z++) sizes_[z] = b_->stats(zones_[z]).objsize;
}

void Torture::teardown() {
  Worker sweeper;
  for (auto& w : workers_)
    for (const Held& h : w->held) release(sweeper, h);
  for (Inbox& in : inboxes_)
    for (const Held& h : in.items) release(sweeper, h);
  std::vector<Held> intr;
  {
    std::lock_guard<std::mutex> g(from_intr_.mu);
    intr.swap(from_intr_.items);
  }
  for (const Held& h : intr) release(sweeper, h);
  for (int z = 0; z < kNumZones; z++) {
    std::vector<std::string> problems = b_->check(zones_[z], true);
    if (!problems.empty())
      kenv::check_failed("slab-consistency", "zone %d: %s", z, problems[0].c_str());
  }
  for (int z : {kTest64, kTest256}) {
    ZoneStats st = b_->stats(zones_[z]);
    if (st.inuse != 0)
      kenv::check_failed("stats-mismatch", "zone %d: %llu objects live after the sweep", z,
                         static_cast<unsigned long long>(st.inuse));
    b_->zone_destroy(zones_[z]);
  }
  vm_->teardown();
}

// Where the memory is, for a stall report (racy reads: the threads may still run).
std::string Torture::memory_report() {
  char line[256];
  kenv::PageSourceStats ps = kenv::page_source_stats();
  snprintf(line, sizeof(line),
           "  pages: budget %zu free %zu in use %zu withheld %zu; free target %zu, "
           "waits %" PRIu64 ", failures %" PRIu64 "\n",
           ps.budget, ps.free, ps.in_use, ps.withheld, kenv::vm_free_target(), ps.waits,
           ps.failures);
  std::string r = line;
  const VmStats& vs = vm_->stats();
  snprintf(line, sizeof(line),
           "  vm: faults %" PRIu64 " (failed %" PRIu64 "), pageout runs %" PRIu64
           ", paged out %" PRIu64 ", swapmeta failures %" PRIu64 ", swap-ins %" PRIu64 "\n",
           vs.faults.load(), vs.fault_failures.load(), vs.pageout_runs.load(),
           vs.pages_paged_out.load(), vs.swapmeta_failures.load(), vs.swapins.load());
  r += line;
  const char* names[kNumZones] = {"TEST64", "TEST256", "PV", "MAP", "SWAPMETA"};
  for (int z = 0; z < kNumZones; z++) {
    ZoneStats st = b_->stats(zones_[z]);
    snprintf(line, sizeof(line),
             "  zone %-9s in use %" PRIu64 ", slabs %" PRIu64 ", spares %" PRIu64 "/%" PRIu64
             ", failed allocs %" PRIu64 "\n",
             names[z], st.inuse, st.slabs, st.reserve_level, st.reserve_target,
             st.failed_allocs);
    r += line;
  }
  return r;
}

TortureResult Torture::run() {
  TortureResult r;
  kenv::boot_reset(kenv::boot_phase::RUNNING);
  kenv::PageSourceConfig pc;
  pc.budget_pages = o_.scenario == "pageout" ? std::min<size_t>(o_.budget_pages, 2048)
                                             : o_.budget_pages;
  pc.interrupt_free_min = pc.budget_pages / 64;
  pc.free_reserved = pc.interrupt_free_min + 16;
  pc.free_target = pc.budget_pages / 8;
  pc.seed = o_.seed;
  kenv::page_source_init(pc);
  b_->reset();

  kenv::RuntimeConfig rc;
  rc.ncpus = o_.cpus;
  rc.seed = o_.seed;
  rc.watchdog_ms = o_.watchdog_ms;
  rc.migrate_one_in = o_.scenario == "migrate" ? 4 : 64;
  rc.delay_one_in = o_.delay_one_in;
  kenv::set_failure_note("reproduce (real threads: as closely as they allow): " +
                         torture_command(o_));
  kenv::Runtime rt(rc);
  rt_ = &rt;
  kenv::Outcome out = rt.run_on_cpu0([this] { setup(); });
  if (!out.ok()) {
    r.ok = false;
    r.title = out.title;
    r.report = out.report;
    return r;
  }
  for (int i = 0; i < o_.threads; i++) workers_.push_back(std::make_unique<Worker>());
  rt.spawn(0, "pagedaemon", [this] { vm_->pageout_daemon(); }, /*daemon=*/true);
  rt.spawn(o_.cpus - 1, "kmpoller", [this] {
    for (;;) {
      kenv::tsleep_idle(&poll_chan_, "kmpoll", 10);
      b_->poll();
    }
  }, /*daemon=*/true);
  auto start = Clock::now();
  deadline_ = start + std::chrono::microseconds(static_cast<int64_t>(o_.duration_s * 1e6));
  for (int i = 0; i < o_.threads; i++)
    rt.spawn(i % o_.cpus, "worker" + std::to_string(i), [this, i] { worker(i); });
  out = rt.run();
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!out.ok()) {
    // The watchdog: stuck threads still run on the runtime; report and leave.
    r.ok = false;
    r.title = out.title;
    r.report = out.report + memory_report();
    return r;
  }
  Histogram ah, fh;
  for (auto& w : workers_) {
    r.ops += w->ops;
    ah.merge(w->alloc_h);
    fh.merge(w->free_h);
  }
  r.alloc_ns = ah.percentiles();
  r.free_ns = fh.percentiles();
  for (int c = 0; c < o_.cpus; c++) r.ops_per_cpu.push_back(ops_per_cpu_[c].n.load());
  for (int z : {kMap, kSwap, kPv}) {
    ZoneStats st = b_->stats(zones_[z]);
    r.reserve_dips += st.reserve_dips;
    r.refills_tried += st.refills_tried;
    r.refills_failed += st.refills_failed;
  }
  r.reserve_failures = reserve_failures_.load();
  r.pressure_cycles = pressure_cycles_.load();
  r.pages_paged_out = vm_->stats().pages_paged_out;
  r.swapins = vm_->stats().swapins;
  r.interrupts = interrupts_.load();
  r.migrations = migrations_.load();
  out = rt.run_on_cpu0([this] { teardown(); });
  if (!out.ok()) {
    r.ok = false;
    r.title = out.title;
    r.report = out.report;
    return r;
  }
  if (!kenv::page_source_teardown_clean(&r.title, &r.report)) {
    r.ok = false;
  } else if (r.reserve_failures != 0) {
    r.ok = false;
    r.title = "slabfuzz: reserve-guarantee: " + std::to_string(r.reserve_failures) +
              " system allocations refused with spare slabs left";
  }
  vm_.reset();
  b_->reset();
  return r;
}

}  // namespace

const std::vector<std::string>& torture_scenarios() { return kScenarios; }

std::string torture_check_options(const TortureOptions& o) {
  if (std::find(kScenarios.begin(), kScenarios.end(), o.scenario) == kScenarios.end())
    return "unknown scenario '" + o.scenario + "' (--list shows them)";
  if (make_backend(o.backend) == nullptr) return "unknown backend '" + o.backend + "'";
  if (o.cpus < 1 || o.cpus > kenv::MAXCPU)
    return "--cpus must be 1.." + std::to_string(kenv::MAXCPU);
  if (o.threads < 1 || o.threads > 256) return "--threads must be 1..256";
  if (o.scenario == "reserve" && o.threads < 2)
    return "the reserve scenario needs --threads >= 2 (one makes the pressure)";
  if (!(o.duration_s > 0) || o.duration_s > 86400) return "--duration must be 0 < S <= 86400";
  if (o.watchdog_ms < 100) return "--watchdog-ms must be at least 100";
  if (o.delay_one_in < 0 || o.delay_one_in > 1'000'000)
    return "--delay-one-in must be 0..1000000 (0: no delays)";
  if (o.budget_pages < 1024 || o.budget_pages > 60000)
    return "--pages must be 1024..60000 (the page source's arena)";
  return "";
}

std::string torture_command(const TortureOptions& o) {
  char buf[512];
  snprintf(buf, sizeof(buf),
           "bazel run //stress:torture -- --scenario=%s --backend=%s --cpus=%d --threads=%d "
           "--duration=%g --seed=%" PRIu64 " --pages=%zu --delay-one-in=%d%s",
           o.scenario.c_str(), o.backend.c_str(), o.cpus, o.threads, o.duration_s, o.seed,
           o.budget_pages, o.delay_one_in,
           o.max_ops ? (" --ops=" + std::to_string(o.max_ops)).c_str() : "");
  return buf;
}

TortureResult run_torture(const TortureOptions& o) {
  Torture t(o);
  return t.run();
}

std::string torture_summary(const TortureOptions& o, const TortureResult& r) {
  char buf[512];
  std::string s;
  if (!r.ok) {
    s += r.title + "\nreproduce (real threads: as closely as they allow): " +
         torture_command(o) + "\n" + r.report;
  }
  double ops_s = r.seconds > 0 ? static_cast<double>(r.ops) / r.seconds : 0;
  snprintf(buf, sizeof(buf),
           "scenario %s backend %s: %d threads on %d cpus, %.2f s, %" PRIu64 " ops, %.0f ops/s\n",
           o.scenario.c_str(), o.backend.c_str(), o.threads, o.cpus, r.seconds, r.ops, ops_s);
  s += buf;
  s += "  per cpu ops:";
  for (uint64_t c : r.ops_per_cpu) s += " " + std::to_string(c);
  s += "\n";
  snprintf(buf, sizeof(buf),
           "  alloc ns p50 %.0f p99 %.0f p99.9 %.0f max %.0f\n"
           "  free  ns p50 %.0f p99 %.0f p99.9 %.0f max %.0f\n",
           r.alloc_ns.p50, r.alloc_ns.p99, r.alloc_ns.p999, r.alloc_ns.max, r.free_ns.p50,
           r.free_ns.p99, r.free_ns.p999, r.free_ns.max);
  s += buf;
  snprintf(buf, sizeof(buf),
           "  reserve: dips %" PRIu64 " refills %" PRIu64 " failed %" PRIu64
           " guarantee failures %" PRIu64 "; pressure cycles %" PRIu64 ", paged out %" PRIu64
           " (swap-ins %" PRIu64 "), interrupts %" PRIu64 ", migrations %" PRIu64 "\n",
           r.reserve_dips, r.refills_tried, r.refills_failed, r.reserve_failures,
           r.pressure_cycles, r.pages_paged_out, r.swapins, r.interrupts, r.migrations);
  s += buf;
  snprintf(buf, sizeof(buf),
           "RESULT scenario=%s backend=%s cpus=%d threads=%d seconds=%.2f ops=%" PRIu64
           " ops_per_sec=%.0f alloc_p99_ns=%.0f free_p99_ns=%.0f reserve_failures=%" PRIu64
           " status=%s\n",
           o.scenario.c_str(), o.backend.c_str(), o.cpus, o.threads, r.seconds, r.ops, ops_s,
           r.alloc_ns.p99, r.free_ns.p99, r.reserve_failures, r.ok ? "ok" : "fail");
  s += buf;
  return s;
}

}  // namespace slabfuzz
