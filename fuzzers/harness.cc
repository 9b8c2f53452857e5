// harness.cc - executes programs (see harness.h).
//
// Checks made here, beyond the oracle's object-level ones:
//  - reserve-guarantee: a system (M_USE_RESERVE) allocation may fail only when the
//    zone has no spare slab left;
//  - reserve-taken: an ordinary allocation never takes one of the last X spare slabs;
//  - misuse-undetected: a double free, a free to the wrong zone, of an interior or of a
//    foreign pointer must panic with the matching message;
//  - leak: at teardown every page is back in the page source.
// Both reserve checks are made only when no other thread touched the zone during the
// call (so that another CPU's activity cannot be blamed on this one).
#include "fuzzers/harness.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>

#include "allocator/backend/backend.h"
#include "allocator/backend/names.h"
#include "allocator/kenv/kenv.h"
#include "allocator/kenv/malloc.h"
#include "allocator/kenv/page_source.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"
#include "fuzzers/oracle.h"

// ASan's defaults for every binary that runs programs (fuzzers, replay, tests); the
// environment's ASAN_OPTIONS still win, key by key. The allocators under test poison
// their own memory (no quarantine is involved there); the quarantine and the
// allocation stacks only guard the harness's host memory, which a run allocates and
// frees by the thousand: these settings run ~10% more programs a second than the
// defaults (256 MB, 30 frames) do (replay --bench, same binary, ASAN_OPTIONS set to the
// defaults).
extern "C" const char* __asan_default_options() {
  return "quarantine_size_mb=16:malloc_context_size=8";
}

namespace slabfuzz {

namespace {

constexpr int kMaxZones = kVmZones + kMaxTestZones;
// Program-owned objects per VM zone. SWAPMETA is the pageout daemon's: in a kernel
// nothing else holds its entries, so a program may hold only a few, far less than a
// slab; one that held hundreds would take the spare slab the daemon needs to page out
// and "find" a deadlock of its own making (the user memory it pages out can be all
// there is).
constexpr size_t kVmZoneCap[kVmZones] = {1024, 1024, 32};  // PV, MAP, SWAPMETA

alignas(64) char g_foreign[256];

// The backend as the harness and the VM use it, counting the allocations and frees in
// flight in each zone: "this allocation ran alone" needs it, now that a thread can be
// switched out anywhere in one (between its taking a spare slab and its counting the
// allocation, say), where counters read around the call see nothing of it. The
// deterministic runtime runs on one OS thread: plain integers.
class InFlightBackend final : public Backend {
 public:
  explicit InFlightBackend(std::unique_ptr<Backend> b) : b_(std::move(b)) {}
  // Allocations and frees in the zone that have started and not returned.
  int in_flight(void* zone) const {
    for (const Busy& b : busy_)
      if (b.zone == zone) return b.n;
    return 0;
  }

  std::string_view name() const override { return b_->name(); }
  void* zone_create(const ZoneOptions& o) override { return b_->zone_create(o); }
  void zone_destroy(void* zone) override { b_->zone_destroy(zone); }
  void* alloc(void* zone, int flags) override {
    Count c(this, zone);
    return b_->alloc(zone, flags);
  }
  void free(void* zone, void* obj) override {
    Count c(this, zone);
    b_->free(zone, obj);
  }
  size_t boot_granule() const override { return b_->boot_granule(); }
  int boot_memory(void* zone, void* mem, size_t bytes) override {
    return b_->boot_memory(zone, mem, bytes);
  }
  bool has_reserve() const override { return b_->has_reserve(); }
  void set_reserve(void* zone, int x) override { b_->set_reserve(zone, x); }
  void drain_cpu(void* zone) override { b_->drain_cpu(zone); }
  int poll() override { return b_->poll(); }
  ZoneStats stats(void* zone) override { return b_->stats(zone); }
  ZoneStats counters(void* zone) override { return b_->counters(zone); }
  uint64_t activity(void* zone) override { return b_->activity(zone); }
  std::vector<std::string> check(void* zone, bool deep) override { return b_->check(zone, deep); }
  void* owner(const void* obj) override { return b_->owner(obj); }
  void reset() override {
    for (Busy& b : busy_) b = Busy{};
    b_->reset();
  }
  const char* misuse_phrase(Misuse m) const override { return b_->misuse_phrase(m); }

 private:
  struct Count {  // RAII: a misuse's panic unwinds through it
    Count(InFlightBackend* s, void* zone) : n(s->slot(zone)) { ++*n; }
    ~Count() { --*n; }
    int* n;
  };
  // A zone's counter; a slot never moves (others hold pointers to theirs). A zone
  // handle may be reused by a later zone, whose count starts where the last one's
  // ended: at zero.
  int* slot(void* zone) {
    Busy* free_slot = nullptr;
    for (Busy& b : busy_) {
      if (b.zone == zone) return &b.n;
      if (b.n == 0 && free_slot == nullptr) free_slot = &b;
    }
    if (free_slot == nullptr) kenv::panic("harness: more than %zu zones busy", std::size(busy_));
    *free_slot = Busy{zone, 0};
    return &free_slot->n;
  }
  struct Busy {
    void* zone = nullptr;
    int n = 0;
  };
  std::unique_ptr<Backend> b_;
  Busy busy_[32];
};

class Exec {
 public:
  Exec(Program p, const HarnessOptions& o)
      : p_(std::move(p)),
        o_(o),
        b_(std::make_unique<InFlightBackend>(
            make_backend(backend_names()[p_.header.backend % backend_names().size()]))),
        oracle_(*b_) {}

  RunResult run();

 private:
  void setup();
  void cpu_stream(int cpu, const std::vector<int>& ops);
  // Operation `index` of the program (its index is what a reference names).
  void exec(int cpu, int index, const Op& op);
  // An object for CPU cpu from zone slot `zone`, allocated by operation `origin`.
  void* alloc(int cpu, int zone, int flags, int origin);
  void free_live(size_t i);
  void quiescent_check(bool deep);
  void teardown();
  void misuse(int cpu, const Op& op);
  // The live object operation op's reference names (oracle.h), or -1.
  long ref(int cpu, const Op& op) const;
  // An interrupt's work: count M_INTNOWAIT allocations from zone on CPU target.
  std::function<void()> interrupt_handler(int target, int zone, int count, int origin);
  std::function<void()> tick_handler(int cpu);
  std::string state_report();
  bool zone_ok(int z) const { return z >= 0 && z < kMaxZones && alive_[z]; }
  int test_zone(int i) const { return kVmZones + i; }
  void create_test_zone(int i, int size_class);

  struct Busy {  // an operation in flight (quiescent checks wait for none)
    explicit Busy(Exec* e) : e_(e) { e_->inflight_++; }
    ~Busy() { e_->inflight_--; }
    Exec* e_;
  };

  Program p_;
  std::vector<std::vector<int>> streams_;  // indices of p_'s operations, CPU by CPU
  HarnessOptions o_;
  std::unique_ptr<InFlightBackend> b_;
  std::unique_ptr<Vm> vm_;
  Oracle oracle_;
  kenv::Runtime* rt_ = nullptr;
  bool alive_[kMaxZones] = {};
  int zone_busy_[kMaxZones] = {};
  size_t zone_limit_ = 0;
  int inflight_ = 0;
  uint64_t quiescent_ops_ = 0;
  uint64_t checked_at_[kMaxZones] = {};  // activity fingerprint at the last full check
  // Per CPU: the panic its misuse operation provokes, once armed. Per CPU since
  // another CPU may arm its own before the first one's panic comes (threads switch at
  // any shared access of the allocator).
  const char* expect_misuse_[kMaxCpus] = {};
  int poll_kicks_ = 0;
  int streams_done_ = 0;       // CPUs whose operation stream has ended
  int ticks_[kMaxCpus] = {};   // clock interrupts so far, per CPU
  static_assert(kMaxCpus == 4);
  int last_zone_[kMaxCpus] = {-1, -1, -1, -1};  // per CPU: the zone its thread last allocated from
  std::vector<uintptr_t> oldest_[kMaxCpus];      // per CPU: free_some's objects
  char poll_chan_ = 0;
};

void Exec::create_test_zone(int i, int size_class) {
  int z = test_zone(i);
  ZoneOptions zo;
  zo.name = "TEST" + std::to_string(i);
  zo.objsize = slabfuzz::size_class(size_class);
  zo.limit = zone_limit_;
  void* h = b_->zone_create(zo);
  oracle_.set_zone(z, h, b_->stats(h).objsize, zo.name);
  alive_[z] = true;
}

void Exec::setup() {
  VmOptions vo;
  // zalloc runs today's kernel; the others naive or reserved, as the header says.
  vo.mode = b_->name() == "zalloc" ? VmMode::kZalloc
            : p_.header.vm_mode    ? VmMode::kReserved
                                   : VmMode::kNaive;
  vo.reserve = p_.header.reserve;
  vo.boot_slabs = p_.header.boot_slabs;
  // A smaller boot sequence than the stress drivers' (128 PV, 16 MAP entries): what
  // matters of it is that it runs before the VM is up (from boot slabs, or not at all
  // in naive mode), and every entry costs every execution its allocation and free.
  vo.bootstrap_pv = 32;
  vo.bootstrap_map = 8;
  vm_ = std::make_unique<Vm>(*b_, vo);
  const char* names[kVmZones] = {"PV ENTRY", "MAP ENTRY", "SWAPMETA"};
  void* handles[kVmZones] = {vm_->pv_zone(), vm_->map_zone(), vm_->swap_zone()};
  for (int z = 0; z < kVmZones; z++) {
    oracle_.set_zone(z, handles[z], b_->stats(handles[z]).objsize, names[z]);
    alive_[z] = true;
  }
  for (int i = 0; i < p_.header.nzones; i++) create_test_zone(i, p_.header.zone_size_class(i));
}

void* Exec::alloc(int cpu, int zone, int flags, int origin) {
  // Busy from here (the caller found the zone alive, and no preemption point came
  // since) until the oracle knows the object: the allocation passes preemption points
  // (and a failed reserve allocation reads the reserve slab under the zone lock), and a
  // zone_destroy meanwhile would free the zone under the call, or find an object
  // nobody holds.
  zone_busy_[zone]++;
  if (!kenv::curthread()->td_intr) last_zone_[cpu] = zone;  // what a follow tick takes
  void* h = oracle_.zone_handle(zone);
  // The reserve checks need the zone's counters around the call (only where a
  // reserve exists and the VM is up: elsewhere they cost a fuzzer its speed).
  bool reserve_checks =
      b_->has_reserve() && kenv::current_boot_phase() >= kenv::boot_phase::VM_READY;
  ZoneStats before;
  bool others_before = false;
  if (reserve_checks) {
    before = b_->counters(h);
    others_before = b_->in_flight(h) > 0;
  }
  void* obj = b_->alloc(h, flags);
  ZoneStats after;
  bool others_after = false;
  if (reserve_checks) {
    after = b_->counters(h);
    others_after = b_->in_flight(h) > 0;
  }
  // Alone: no other operation, thread, interrupt or daemon (the pageout daemon, the
  // VM's own allocations) allocated or freed in the zone while this call ran, none was
  // half-way through one when it started or when it ended.
  bool alone = !others_before && !others_after &&
               after.allocs + after.frees == before.allocs + before.frees + (obj ? 1 : 0);
  if (alone && reserve_checks) {
    // A failed reserve allocation with spares there all along, before and after (a
    // spare the poller brought to the zone while the call ran, from another CPU's
    // lists, may rightly have been missed), or with objects left in the reserve slab.
    // Those objects (read under the zone lock, so only now) were there all along:
    // with no allocation or free in the zone and no dip, the reserve slab is the one
    // it was, holding what it held.
    if (obj == nullptr && (flags & M_USE_RESERVE) &&
        after.refills_tried == before.refills_tried) {
      ZoneStats full = b_->stats(h);
      bool spares = std::min(before.reserve_level, after.reserve_level) > 0;
      bool objects = full.reserve_objects > 0 && full.reserve_dips == before.reserve_dips &&
                     full.allocs + full.frees == after.allocs + after.frees;
      if (spares || objects)
        kenv::check_failed("reserve-guarantee",
                           "zone %s: a system allocation failed with %llu spare slabs and %llu "
                           "reserve objects left",
                           oracle_.zone_name(zone).c_str(),
                           static_cast<unsigned long long>(after.reserve_level),
                           static_cast<unsigned long long>(full.reserve_objects));
    }
    if (!(flags & M_USE_RESERVE) && after.reserve_dips > before.reserve_dips)
      kenv::check_failed("reserve-taken", "zone %s: an ordinary allocation took a spare slab",
                         oracle_.zone_name(zone).c_str());
  }
  if (obj != nullptr) oracle_.on_alloc(zone, obj, flags, cpu, origin);
  zone_busy_[zone]--;
  return obj;
}

// The clock interrupt of CPU cpu (header tick): allocates, then arms the next tick,
// while the CPUs' operation streams run and at most kMaxTicks times (a tick that
// fires because nothing else can run must not keep a stuck run going).
std::function<void()> Exec::tick_handler(int cpu) {
  return [this, cpu] {
    // Its callouts allocate once the VM is up.
    int z = p_.header.tick_zone() == kTickFollow ? last_zone_[cpu] : p_.header.tick_zone();
    if (z >= 0 && kenv::current_boot_phase() >= kenv::boot_phase::VM_READY)
      interrupt_handler(cpu, z, kTickAllocs, /*origin=*/-1)();
    if (streams_done_ < p_.header.ncpus && ++ticks_[cpu] < kMaxTicks)
      rt_->post_interrupt_after(cpu, p_.header.tick_period(), tick_handler(cpu));
  };
}

std::function<void()> Exec::interrupt_handler(int target, int z, int count, int origin) {
  // Packed, so that the closure fits std::function's own storage (no allocation).
  uint64_t args = static_cast<uint64_t>(target) | static_cast<uint64_t>(z) << 8 |
                  static_cast<uint64_t>(count) << 16 | static_cast<uint64_t>(origin + 1) << 32;
  return [this, args] {
    int target = static_cast<int>(args & 0xff), z = static_cast<int>(args >> 8 & 0xff);
    int count = static_cast<int>(args >> 16 & 0xffff);
    int origin = static_cast<int>(args >> 32) - 1;
    Busy ibusy(this);
    for (int k = 0; k < count && zone_ok(z); k++) {
      if (z < kVmZones && oracle_.live_in_zone(z) >= kVmZoneCap[z]) return;
      alloc(target, z, M_INTNOWAIT, origin);
    }
  };
}

void Exec::free_live(size_t i) {
  LiveObject o = oracle_.take(i);
  zone_busy_[o.zone]++;
  b_->free(oracle_.zone_handle(o.zone), reinterpret_cast<void*>(o.addr));
  zone_busy_[o.zone]--;
}

long Exec::ref(int cpu, const Op& op) const {
  return oracle_.find_ref(static_cast<int>(op.c),
                          op.code == OpCode::kRemoteFree ? cpu : -1);
}

void Exec::misuse(int cpu, const Op& op) {
  long found = ref(cpu, op);
  if (found < 0) return;
  size_t i = static_cast<size_t>(found);
  LiveObject o = oracle_.live(i);
  void* h = oracle_.zone_handle(o.zone);
  char* obj = reinterpret_cast<char*>(o.addr);
  // Each backend says how it reports each misuse; one it cannot detect is not tried.
  Misuse kind = op.a == 0 ? Misuse::kDoubleFree
                : op.a == 1 ? Misuse::kWrongZone
                : op.a == 2 ? Misuse::kInterior
                            : Misuse::kForeign;
  const char* phrase = b_->misuse_phrase(kind);
  if (phrase == nullptr) return;
  // The zone must outlive the misuse (a destroy on another CPU waits), which ends the
  // run one way or the other: the count is never given back.
  zone_busy_[o.zone]++;
  switch (kind) {
    case Misuse::kDoubleFree:
      // In a critical section: an interrupt due at the first free's preemption points
      // (a timer) would otherwise get the object back, and the second free would be a
      // legitimate one.
      kenv::crit_enter();
      free_live(i);
      expect_misuse_[cpu] = phrase;
      b_->free(h, obj);
      kenv::crit_exit();
      break;
    case Misuse::kWrongZone: {
      int other = -1;
      for (int z = 0; z < kMaxZones; z++)
        if (zone_ok(z) && z != o.zone && zone_busy_[z] == 0) other = z;
      if (other < 0) {
        zone_busy_[o.zone]--;
        return;
      }
      zone_busy_[other]++;
      expect_misuse_[cpu] = phrase;
      b_->free(oracle_.zone_handle(other), obj);
      break;
    }
    case Misuse::kInterior:
      if (o.size < 32) {
        zone_busy_[o.zone]--;
        return;
      }
      expect_misuse_[cpu] = phrase;
      b_->free(h, obj + 16);
      break;
    case Misuse::kForeign:
      expect_misuse_[cpu] = phrase;
      b_->free(h, g_foreign + 64);
      break;
  }
  kenv::check_failed("misuse-undetected", "%s (%s) was not detected", expect_misuse_[cpu],
                     oracle_.zone_name(o.zone).c_str());
}

void Exec::exec(int cpu, int index, const Op& op) {
  Busy busy(this);
  int nz = p_.num_zones();
  switch (op.code) {
    case OpCode::kAlloc: {
      int z = op.a % nz;
      if (!zone_ok(z)) return;
      int flags = flag_set(op.b);
      if (z < kVmZones) {
        if (oracle_.live_in_zone(z) >= kVmZoneCap[z]) return;
      } else {
        flags |= M_NULLOK;  // test zones have a limit
      }
      alloc(cpu, z, flags, index);
      return;
    }
    case OpCode::kFree:
    case OpCode::kRemoteFree: {
      long i = ref(cpu, op);
      if (i >= 0) free_live(static_cast<size_t>(i));
      return;
    }
    case OpCode::kChurn: {
      int z = op.a % nz;
      for (int k = 0; k < op.b && zone_ok(z); k++) {
        if (z < kVmZones && oracle_.live_in_zone(z) >= kVmZoneCap[z]) return;
        void* obj = alloc(cpu, z, M_WAITOK | M_NULLOK, index);
        if (obj == nullptr) return;
        kenv::preempt_point();
        // Another CPU may have freed it meanwhile (a remote free picks any object).
        long i = oracle_.index_of(obj);
        if (i >= 0) free_live(static_cast<size_t>(i));
      }
      return;
    }
    case OpCode::kPressure:
      vm_->anon_touch(op.c);  // touched again: what was swapped out comes back
      // Other consumers' (user) memory: it can take free pages only down to the
      // normal tier's floor, as in a real kernel.
      kenv::page_source_pressure(op.c, kenv::VM_TIER_NORMAL);
      return;
    case OpCode::kFailNext:
      kenv::page_source_fail_next(op.b);
      return;
    case OpCode::kRelief:
      kenv::page_source_relief(op.c);
      return;
    case OpCode::kBootAdvance: {
      auto ph = kenv::current_boot_phase();
      if (ph == kenv::boot_phase::VM_READY) kenv::boot_advance(kenv::boot_phase::SMP);
      else if (ph == kenv::boot_phase::SMP) kenv::boot_advance(kenv::boot_phase::RUNNING);
      kenv::wakeup(&alive_);  // CPUs waiting for SMP
      return;
    }
    case OpCode::kVmFault:
      vm_->fault(op.b % 2 ? (M_RNOWAIT | M_NULLOK) : M_WAITOK);
      return;
    case OpCode::kVmUnmap:
      vm_->unmap_one();
      return;
    case OpCode::kPageout:
      vm_->pageout(op.b);
      return;
    case OpCode::kInterrupt:
      rt_->post_interrupt(op.a,
                          interrupt_handler(op.a, static_cast<int>(op.c) % nz, op.b, index));
      return;
    case OpCode::kTimer:
      rt_->post_interrupt_after(op.a, op.b + 1,
                                interrupt_handler(op.a, static_cast<int>(op.c) % nz, 8, index));
      return;
    case OpCode::kTimerAt:
      rt_->post_interrupt_at_access(op.a, static_cast<int>(op.c) + 1,
                                    interrupt_handler(op.a, op.b % nz, 8, index));
      return;
    case OpCode::kPoll:
      b_->poll();
      poll_kicks_++;
      kenv::wakeup(&poll_chan_);
      return;
    case OpCode::kDrain: {
      int z = op.a % nz;
      if (!zone_ok(z)) return;
      // Busy: the zone must outlive the drain (a destroy on another CPU waits for it).
      zone_busy_[z]++;
      b_->drain_cpu(oracle_.zone_handle(z));
      zone_busy_[z]--;
      return;
    }
    case OpCode::kZoneCreate: {
      int i = op.a % p_.header.nzones;
      int z = test_zone(i);
      if (alive_[z] || zone_busy_[z] != 0) return;
      // Busy while it is created: the allocator's zone creation passes shared accesses,
      // where another CPU's zone_create of the same slot must not start a second zone.
      zone_busy_[z]++;
      create_test_zone(i, op.b);
      zone_busy_[z]--;
      return;
    }
    case OpCode::kZoneDestroy: {
      int z = test_zone(op.a % p_.header.nzones);
      if (!alive_[z] || zone_busy_[z] != 0) return;
      alive_[z] = false;  // first: no new allocation (an interrupt, say) may start
      zone_busy_[z]++;    // and no zone_create may reuse the slot meanwhile
      void* h = oracle_.zone_handle(z);
      for (size_t i = oracle_.live_count(); i-- > 0;)
        if (i < oracle_.live_count() && oracle_.live(i).zone == z) free_live(i);
      // A free on another CPU may have taken its object from the oracle and not yet
      // given it back to the zone: let it finish first.
      while (zone_busy_[z] > 1) kenv::cpu_spinwait();
      b_->zone_destroy(h);
      zone_busy_[z]--;
      checked_at_[z] = 0;
      return;
    }
    case OpCode::kReserveChain: {
      int z = op.a % nz;
      for (int k = 0; k < op.b && zone_ok(z); k++) {
        if (z < kVmZones && oracle_.live_in_zone(z) >= kVmZoneCap[z]) return;
        if (alloc(cpu, z, M_NOWAIT, index) == nullptr) return;
      }
      return;
    }
    case OpCode::kMisuse:
      misuse(cpu, op);
      return;
    case OpCode::kPreempt:
      rt_->preempt_after(op.b + 1, static_cast<int>(op.c));
      return;
    case OpCode::kFreeSome: {
      // Oldest first, as a cache that shrinks gives back what it took first; another
      // CPU may free some of them meanwhile.
      int z = op.a % nz;
      std::vector<uintptr_t>& oldest = oldest_[cpu];  // its own: other CPUs run meanwhile
      oracle_.oldest(z, op.b, &oldest);
      for (uintptr_t addr : oldest) {
        long i = oracle_.index_of(reinterpret_cast<void*>(addr));
        if (i >= 0) free_live(static_cast<size_t>(i));
      }
      return;
    }
    case OpCode::kRealloc: {
      long found = ref(cpu, op);
      int z = op.a % nz;
      if (found < 0 || !zone_ok(z)) return;
      if (z < kVmZones && oracle_.live_in_zone(z) >= kVmZoneCap[z]) return;
      const LiveObject old = oracle_.live(static_cast<size_t>(found));
      if (alloc(cpu, z, z < kVmZones ? M_WAITOK : M_WAITOK | M_NULLOK, index) == nullptr) return;
      // Another CPU may have freed the old object meanwhile (and its address been reused).
      long i = oracle_.index_of(reinterpret_cast<void*>(old.addr));
      if (i >= 0 && oracle_.live(static_cast<size_t>(i)).serial == old.serial)
        free_live(static_cast<size_t>(i));
      return;
    }
    case OpCode::kNumOps:
      break;
  }
  // Every operation's case returns: an operation of ops.h without one ends here.
  kenv::panic("harness: operation %s has no case in Exec::exec", op_name(op.code));
}

// After every operation that leaves no other in flight: indices, lists and counters
// of every zone touched since its last check; every check_every-th time, and at
// teardown, object by object.
void Exec::quiescent_check(bool deep) {
  if (inflight_ != 0) return;
  for (int z = 0; z < kMaxZones; z++) {
    if (!alive_[z]) continue;
    // A zone nobody touched since its last check is as it was.
    uint64_t fp = b_->activity(oracle_.zone_handle(z));
    if (fp == checked_at_[z] && !deep) continue;
    checked_at_[z] = fp;
    oracle_.check_zone(z, /*compare_inuse=*/z >= kVmZones, deep);
  }
}

void Exec::cpu_stream(int cpu, const std::vector<int>& ops) {
  if (cpu == 0) {
    if (kenv::current_boot_phase() == kenv::boot_phase::EARLY) {
      Busy busy(this);
      vm_->bootstrap();
    }
  } else {
    while (kenv::current_boot_phase() < kenv::boot_phase::SMP)
      kenv::tsleep(&alive_, "smpwait", 0);
  }
  for (int i : ops) {
    exec(cpu, i, p_.ops[static_cast<size_t>(i)]);
    kenv::preempt_point();
    if (inflight_ == 0) quiescent_check(++quiescent_ops_ % o_.check_every == 0);
  }
  streams_done_++;
  if (cpu == 0 && kenv::current_boot_phase() < kenv::boot_phase::RUNNING)
    kenv::boot_advance(kenv::boot_phase::RUNNING);
  kenv::wakeup(&alive_);
}

void Exec::teardown() {
  quiescent_check(true);
  while (oracle_.live_count()) free_live(oracle_.live_count() - 1);
  for (int i = 0; i < kMaxTestZones; i++) {
    int z = test_zone(i);
    if (alive_[z]) {
      b_->zone_destroy(oracle_.zone_handle(z));
      alive_[z] = false;
    }
  }
  vm_->teardown();
  for (int z = 0; z < kVmZones; z++) alive_[z] = false;
}

// Zones and pages at the failure, for the crash report.
std::string Exec::state_report() {
  std::string r;
  char line[320];
  kenv::PageSourceStats ps = kenv::page_source_stats();
  snprintf(line, sizeof(line),
           "  pages: budget %zu free %zu in use %zu withheld %zu; waits %llu, failures %llu "
           "(injected %llu)\n",
           ps.budget, ps.free, ps.in_use, ps.withheld, static_cast<unsigned long long>(ps.waits),
           static_cast<unsigned long long>(ps.failures),
           static_cast<unsigned long long>(ps.injected));
  r += line;
  for (int z = 0; z < kMaxZones; z++) {
    if (!alive_[z]) continue;
    ZoneStats st = b_->stats(oracle_.zone_handle(z));
    snprintf(line, sizeof(line),
             "  zone %-10s live %llu (shadow %zu) slabs %llu (boot %llu) spares %llu/%llu "
             "dips %llu refills %llu failed %llu\n",
             oracle_.zone_name(z).c_str(), static_cast<unsigned long long>(st.inuse),
             oracle_.live_in_zone(z), static_cast<unsigned long long>(st.slabs),
             static_cast<unsigned long long>(st.boot_slabs),
             static_cast<unsigned long long>(st.reserve_level),
             static_cast<unsigned long long>(st.reserve_target),
             static_cast<unsigned long long>(st.reserve_dips),
             static_cast<unsigned long long>(st.refills_tried),
             static_cast<unsigned long long>(st.refills_failed));
    r += line;
  }
  return r;
}

RunResult Exec::run() {
  const Header& h = p_.header;
  RunResult r;
  kenv::boot_reset(h.boot == BootMode::kEarly ? kenv::boot_phase::EARLY
                                              : kenv::boot_phase::RUNNING);
  kenv::PageSourceConfig pc;
  pc.budget_pages = h.budget_pages();
  // As in DragonFly, the system tier's floor sits a few pages under the normal one:
  // closer than one slab (32 pages), so that a slab cannot always be had at system
  // tier when ordinary requests start to wait.
  pc.interrupt_free_min = pc.budget_pages / 64;
  pc.free_reserved = pc.interrupt_free_min + 16;
  pc.free_target = pc.budget_pages / 8;
  pc.seed = h.seed | 1;
  kenv::page_source_init(pc);
  b_->reset();
  zone_limit_ = pc.budget_pages * kenv::PAGE_SIZE / 16;

  kenv::RuntimeConfig rc;
  rc.ncpus = h.ncpus;
  rc.seed = h.seed;
  rc.pct_depth = h.pct_depth;
  rc.pct_races = h.races;
  // The change points at accesses over the run as it is: about 14 preemption points an
  // operation (the benchmark's programs: 460 a run, 32 operations on average); the
  // horizon above, older, is two to three times the run, and keeps its programs'
  // interleavings.
  rc.pct_access_horizon = 16 + 14 * static_cast<int>(p_.ops.size());
  rc.pct_horizon = 64 + 32 * static_cast<int>(p_.ops.size());
  rc.max_steps = 400'000;
  rc.record_trace = o_.trace;
  kenv::Runtime rt(rc);
  rt_ = &rt;

  auto finish = [&](const kenv::Outcome& out) {
    r.ok = out.ok();
    r.title = out.title;
    r.steps += out.steps;
    r.accesses += out.accesses;
    r.alias_pairs += out.alias_pairs;
    r.new_alias_pairs += out.new_alias_pairs;
    if (!r.ok && out.kind == kenv::Outcome::kPanic &&
        out.title.rfind("slabfuzz: panic: ", 0) == 0) {
      for (const char* phrase : expect_misuse_) {
        if (phrase != nullptr && out.title.find(phrase) != std::string::npos) {
          r.ok = true;
          r.expected_misuse = true;
        }
      }
    }
    // The state of the zones, for a finding only (a provoked misuse is none).
    r.report = out.report;
    if (!r.ok) r.report += state_report();
  };

  kenv::Outcome out = rt.run_on_cpu0([this] { setup(); });
  finish(out);
  if (r.ok) {
    streams_.assign(h.ncpus, {});
    for (auto& s : streams_) s.reserve(p_.ops.size());
    for (size_t i = 0; i < p_.ops.size(); i++)
      streams_[p_.ops[i].cpu].push_back(static_cast<int>(i));
    rt.spawn(0, "pagedaemon", [this] { vm_->pageout_daemon(&inflight_); }, /*daemon=*/true);
    rt.spawn(h.ncpus - 1, "kmpoller", [this] {
      for (;;) {
        while (poll_kicks_ == 0) {
          kenv::tsleep_idle(&poll_chan_, "kmpoll", 0);
          if (kenv::kthread_should_stop()) return;
        }
        poll_kicks_ = 0;
        Busy busy(this);
        b_->poll();
      }
    }, /*daemon=*/true);
    for (int cpu = 0; cpu < h.ncpus; cpu++)
      rt.spawn(cpu, "cpu" + std::to_string(cpu),
               [this, cpu] { cpu_stream(cpu, streams_[cpu]); });
    if (h.tick_period() != 0)
      for (int cpu = 0; cpu < h.ncpus; cpu++)
        rt.post_interrupt_after(cpu, h.tick_period(), tick_handler(cpu));
    out = rt.run();
    finish(out);
    r.trace = rt.trace();
    r.objects = oracle_.allocated();
  }
  if (r.ok && !r.expected_misuse) {
    out = rt.run_on_cpu0([this] { teardown(); });
    finish(out);
    if (r.ok) r.ok = kenv::page_source_teardown_clean(&r.title, &r.report);
  }
  // Whatever happened, leave nothing behind for the next run.
  kenv::page_source_teardown();
  vm_.reset();
  b_->reset();
  kenv::boot_reset(kenv::boot_phase::RUNNING);
  rt_ = nullptr;
  return r;
}

}  // namespace

Program effective_program(const Program& p, const TargetConfig& t) {
  Program e = p;
  if (t.mode) e.header.vm_mode = *t.mode == VmMode::kReserved ? 1 : 0;
  if (t.backend) e.header.backend = static_cast<uint8_t>(*t.backend);
  // The three VM zones' spare slabs stay under an eighth of memory: a reserve that
  // holds most of the machine starves everyone else by configuration, not by a bug.
  int max_reserve = static_cast<int>(e.header.budget_pages() / (8 * 3 * 32));
  e.header.reserve = static_cast<uint8_t>(std::min<int>(e.header.reserve, max_reserve));
  e.header.reserve = static_cast<uint8_t>(std::max<int>(e.header.reserve, t.min_reserve));
  e.header.boot_slabs = static_cast<uint8_t>(std::max<int>(e.header.boot_slabs, t.min_boot_slabs));
  e.header.backend = static_cast<uint8_t>(e.header.backend % backend_names().size());
  canonicalize(&e);
  return e;
}

TargetConfig zalloc_target() {
  TargetConfig t;
  t.backend = backend_index("zalloc");
  return t;
}

std::string broken_promise(const std::string& title) {
  auto has = [&](const char* s) { return title.find(s) != std::string::npos; };
  if (has("waits for pages before the VM is up")) return "boot completes";
  if (title.rfind("slabfuzz: deadlock: ", 0) == 0)
    return has("pagedaemon (") ? "the pageout daemon makes progress" : "no deadlock";
  if (title.rfind("slabfuzz: livelock: ", 0) == 0 || title.rfind("slabfuzz: hang: ", 0) == 0)
    return "no livelock";
  if (title.rfind("slabfuzz: nowait-blocked: ", 0) == 0 ||
      title.rfind("slabfuzz: sleep-in-", 0) == 0)
    return "a no-wait allocation never sleeps";
  if (title.rfind("slabfuzz: leak: ", 0) == 0 || has(" live objects"))
    return "nothing leaks at teardown";
  return "";
}

namespace {

// The first event where two interleavings part, with a little of what led there.
std::string first_divergence(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) i++;
  if (i == a.size() && i == b.size()) return "the interleavings are the same\n";
  std::string s = "event " + std::to_string(i) + " of each (the " + std::to_string(i) +
                  " before are the same):\n";
  for (size_t k = i > 3 ? i - 3 : 0; k < i + 4; k++) {
    std::string x = k < a.size() ? a[k] : "(ended)";
    std::string y = k < b.size() ? b[k] : "(ended)";
    char line[256];
    snprintf(line, sizeof(line), "%s %-48.48s | %s\n", k == i ? ">" : " ", x.c_str(), y.c_str());
    s += line;
    if (k >= a.size() && k >= b.size()) break;
  }
  return s;
}

// z ran on zalloc, k on the target. A promise k broke is a finding only if zalloc kept
// it: zalloc ran clean, or ended only at teardown (a leak) and the promise is another.
// A failure of zalloc that ends its run (a deadlock, a panic) leaves nothing to compare:
// zalloc_fuzz's business, not the conversion's.
RunResult compare_runs(const RunResult& z, RunResult k) {
  k.zalloc_title = z.ok ? "" : z.title;
  k.steps += z.steps;
  k.accesses += z.accesses;
  k.alias_pairs += z.alias_pairs;
  k.new_alias_pairs += z.new_alias_pairs;
  if (k.ok) {
    k.reverse = !z.ok;
    return k;
  }
  std::string promise = broken_promise(k.title);
  if (promise.empty()) return k;  // the allocator's own fault: a finding as it is
  std::string zp = z.ok ? "" : broken_promise(z.title);
  bool kept = z.ok || (zp == "nothing leaks at teardown" && promise != zp);
  if (!kept) {
    k.ok = true;  // both broke it: not the conversion's doing
    return k;
  }
  std::string what = k.title.rfind("slabfuzz: ", 0) == 0 ? k.title.substr(10) : k.title;
  k.report = "kmalloc_obj: " + k.title + "\nzalloc: " +
             (z.ok ? std::string("ran clean") : z.title) + "\n\n-- kmalloc_obj | zalloc, " +
             first_divergence(k.trace, z.trace) + "\n-- kmalloc_obj's state --\n" + k.report;
  k.title = "slabfuzz: conversion: " + promise + ": zalloc kept it, kmalloc_obj " + what;
  return k;
}

}  // namespace

RunResult run_program(const Program& p, const HarnessOptions& o) {
  if (o.target.compare_with_zalloc) {
    HarnessOptions zo = o;
    zo.target = zalloc_target();
    RunResult z = run_program(p, zo);
    HarnessOptions ko = o;
    ko.target.compare_with_zalloc = false;
    return compare_runs(z, run_program(p, ko));
  }
  Exec e(effective_program(p, o.target), o);
  return e.run();
}

std::string crash_report(const Program& p, const RunResult& r) {
  std::string s = r.title + "\n\n-- program --\n" + to_text(p);
  if (!r.trace.empty()) {
    s += "\n-- interleaving (last 60 events of " + std::to_string(r.trace.size()) + ") --\n";
    size_t from = r.trace.size() > 60 ? r.trace.size() - 60 : 0;
    for (size_t i = from; i < r.trace.size(); i++) s += r.trace[i] + "\n";
  }
  s += "\n-- state --\n" + r.report;
  return s;
}

}  // namespace slabfuzz
