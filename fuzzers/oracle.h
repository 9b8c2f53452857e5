// oracle.h - the shadow model of every live object, and the checks that must hold
// whatever the program and the interleaving: no two live objects overlap; every
// object is aligned and belongs to the zone it came from; M_ZERO objects are zero;
// content written at allocation is intact at free. A violation ends the run through
// kenv::check_failed with a stable title "slabfuzz: <check>: <detail>".
//
// Used by the fuzz harness, the replay tests and the stress drivers (one oracle).
// Not thread-safe: the deterministic runtime runs one fiber at a time; stress
// drivers keep one Oracle per thread.
#ifndef SLABFUZZ_FUZZERS_ORACLE_H_
#define SLABFUZZ_FUZZERS_ORACLE_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <string>
#include <vector>

#include "allocator/backend/backend.h"

namespace slabfuzz {

struct LiveObject {
  uintptr_t addr = 0;
  int zone = 0;
  size_t size = 0;
  int cpu = 0;
  uint64_t serial = 0;
  int origin = -1;  // the program operation that allocated it (-1: none, a clock tick)
};

class Oracle {
 public:
  explicit Oracle(Backend& backend) : b_(backend) {
    // Room for what a typical program holds (a fuzzer builds an oracle per input).
    zones_.reserve(8);
    live_.reserve(256);
    by_addr_.reserve(256);
  }

  // Zone slot `zone` is the backend zone `handle` with objects of `size` bytes.
  void set_zone(int zone, void* handle, size_t size, const std::string& name);
  void* zone_handle(int zone) const { return zones_.at(zone).handle; }
  const std::string& zone_name(int zone) const { return zones_.at(zone).name; }

  // A fresh object from zone: checks and records it, then writes its pattern.
  void on_alloc(int zone, void* obj, int flags, int cpu, int origin = -1);
  // Removes live object i (content checked) and returns it; the caller frees it.
  LiveObject take(size_t i);
  size_t live_count() const { return live_.size(); }
  uint64_t allocated() const { return serial_; }  // objects it has seen allocated
  const LiveObject& live(size_t i) const { return live_[i]; }
  size_t live_in_zone(int zone) const;
  // The live object a reference to operation `origin` names (program.h): the oldest
  // that operation allocated; else one the nearest operation before it allocated, else
  // after it (the oldest of those). With not_cpu >= 0, objects another CPU allocated
  // come first. -1 if nothing is live.
  long find_ref(int origin, int not_cpu = -1) const;
  // The index of the live object at addr, or -1 (another thread may have freed it).
  long index_of(const void* addr) const;
  // The addresses of zone's k oldest live objects (first allocated first).
  // Into *out (the oracle's scratch space serves the sort: no allocation once warm).
  void oldest(int zone, size_t k, std::vector<uintptr_t>* out);

  // Backend invariants and counters (quiescent points only).
  void check_zone(int zone, bool compare_inuse, bool deep);

 private:
  struct Zone {
    void* handle = nullptr;
    size_t size = 0;
    std::string name;
    size_t live = 0;
  };
  void check_content(const LiveObject& o);

  // Live objects by address: a sorted flat array (the oracle looks a neighbour up on
  // every allocation; a tree would cost a host allocation per object).
  using AddrIndex = std::vector<std::pair<uintptr_t, size_t>>;  // (addr, index in live_)
  AddrIndex::iterator addr_lower_bound(uintptr_t addr);

  Backend& b_;
  std::vector<Zone> zones_;  // by zone slot
  std::vector<LiveObject> live_;
  std::vector<std::pair<uint64_t, uintptr_t>> oldest_scratch_;
  AddrIndex by_addr_;
  uint64_t serial_ = 0;
};

}  // namespace slabfuzz

#endif  // SLABFUZZ_FUZZERS_ORACLE_H_
