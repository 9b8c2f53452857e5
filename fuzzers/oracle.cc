// oracle.cc - the shadow model and its checks (see oracle.h).
#include "fuzzers/oracle.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <tuple>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/malloc.h"

#ifdef SLABFUZZ_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace slabfuzz {

namespace {

// Word i of an object's pattern is (addr + 8i) * K ^ serial: kept as a running
// product (one add a word), in the checkers' own code (no ASan, no coverage).
constexpr uint64_t kPatternK = 0x9e3779b97f4a7c15ULL;

// An object handed out must be addressable in full: under ASan, a poisoned byte in it
// is reported as ASan reports any access (use-after-poison, say). The bulk loops below
// then run without per-access checks.
#ifdef SLABFUZZ_HAVE_ASAN
// Whether the ASan shadow of [obj, obj + size) is all zero (x86-64 Linux: shadow byte of
// addr at (addr >> 3) + 0x7fff8000): eight shadow bytes a load, for 8-aligned objects
// of whole words; the others (and any nonzero shadow) are left to ASan's own query.
KENV_CHECKER __attribute__((no_sanitize("undefined"))) bool shadow_clear(const void* obj,
                                                                           size_t size) {
  auto a = reinterpret_cast<uintptr_t>(obj);
  if (((a | size) & 7) != 0) return false;
  const auto* sh = reinterpret_cast<const unsigned char*>((a >> 3) + 0x7fff8000);
  size_t n = size >> 3, i = 0;
  uint64_t any = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, sh + i, 8);
    any |= w;
  }
  for (; i < n; i++) any |= sh[i];
  return any == 0;
}
#endif

__attribute__((noinline)) KENV_NO_COVERAGE void touch_poisoned(const void* obj, size_t size) {
#ifdef SLABFUZZ_HAVE_ASAN
  if (shadow_clear(obj, size)) return;
  // Reported as an instrumented load of the first poisoned byte would be (this file
  // is not instrumented in the fuzzing builds: see fuzzers/coverage.bzl).
  if (void* bad = __asan_region_is_poisoned(const_cast<void*>(obj), size))
    __asan_report_error(__builtin_return_address(0), __builtin_frame_address(0),
                        __builtin_frame_address(0), bad, /*is_write=*/0, /*access_size=*/1);
#else
  (void)obj;
  (void)size;
#endif
}

// The bulk loops over object memory: framework code on memory touch_poisoned() has
// vouched for, run for every allocation and free (objects up to 16 KiB): neither ASan,
// UBSan (a pointer-overflow check per word) nor coverage in them.
#define ORACLE_BULK KENV_CHECKER __attribute__((no_sanitize("undefined")))

// First nonzero byte of [p, p + size), or size.
ORACLE_BULK size_t first_nonzero(const unsigned char* p, size_t size) {
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != 0) break;
  }
  for (; i < size; i++)
    if (p[i] != 0) return i;
  return size;
}

ORACLE_BULK void fill(void* obj, size_t size, uint64_t serial) {
  auto* p = static_cast<unsigned char*>(obj);
  auto addr = reinterpret_cast<uintptr_t>(obj);
  size_t i = 0;
  uint64_t h = addr * kPatternK;
  for (; i + 8 <= size; i += 8, h += 8 * kPatternK) {
    uint64_t w = h ^ serial;
    memcpy(p + i, &w, 8);
  }
  for (; i < size; i++) p[i] = static_cast<unsigned char>(serial + i);
}

// Offset of the first byte of the object at addr that is not its pattern, or size.
// Compares 64 bytes at a time (no branch per word, so that it vectorizes).
ORACLE_BULK size_t first_changed(uintptr_t addr, size_t size, uint64_t serial) {
  const auto* p = reinterpret_cast<const unsigned char*>(addr);
  size_t i = 0;
  uint64_t h = addr * kPatternK;
  for (; i + 64 <= size; i += 64, h += 64 * kPatternK) {
    uint64_t diff = 0;
    for (size_t k = 0; k < 64; k += 8) {
      uint64_t w;
      memcpy(&w, p + i + k, 8);
      diff |= w ^ ((h + k * kPatternK) ^ serial);
    }
    if (diff != 0) break;
  }
  for (; i + 8 <= size; i += 8, h += 8 * kPatternK) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != (h ^ serial)) return i;
  }
  for (; i < size; i++)
    if (p[i] != static_cast<unsigned char>(serial + i)) return i;
  return size;
}

}  // namespace

namespace {
// The first entry of a sorted (addr, index) array at or after addr.
template <class Index>
auto lower_bound_addr(Index& index, uintptr_t addr) {
  return std::lower_bound(index.begin(), index.end(), addr,
                          [](const std::pair<uintptr_t, size_t>& e, uintptr_t a) { return e.first < a; });
}
}  // namespace

Oracle::AddrIndex::iterator Oracle::addr_lower_bound(uintptr_t addr) {
  return lower_bound_addr(by_addr_, addr);
}

void Oracle::set_zone(int zone, void* handle, size_t size, const std::string& name) {
  if (zones_.size() <= static_cast<size_t>(zone)) zones_.resize(static_cast<size_t>(zone) + 1);
  Zone& z = zones_[zone];
  z.handle = handle;
  z.size = size;
  z.name = name;
  z.live = 0;
}

size_t Oracle::live_in_zone(int zone) const {
  return static_cast<size_t>(zone) < zones_.size() ? zones_[zone].live : 0;
}

void Oracle::oldest(int zone, size_t k, std::vector<uintptr_t>* out) {
  std::vector<std::pair<uint64_t, uintptr_t>>& objs = oldest_scratch_;  // (serial, address)
  objs.clear();
  for (const LiveObject& o : live_)
    if (o.zone == zone) objs.emplace_back(o.serial, o.addr);
  k = std::min(k, objs.size());
  std::partial_sort(objs.begin(), objs.begin() + static_cast<long>(k), objs.end());
  out->clear();
  for (size_t i = 0; i < k; i++) out->push_back(objs[i].second);
}

long Oracle::index_of(const void* addr) const {
  auto a = reinterpret_cast<uintptr_t>(addr);
  auto it = lower_bound_addr(by_addr_, a);
  return it == by_addr_.end() || it->first != a ? -1 : static_cast<long>(it->second);
}

long Oracle::find_ref(int origin, int not_cpu) const {
  // Smallest key wins: (own CPU when another's was asked for, after the operation,
  // distance, serial).
  long best = -1;
  std::tuple<bool, bool, long, uint64_t> best_key;
  for (size_t i = 0; i < live_.size(); i++) {
    const LiveObject& o = live_[i];
    auto key = std::make_tuple(not_cpu >= 0 && o.cpu == not_cpu, o.origin > origin,
                               std::labs(static_cast<long>(o.origin) - origin), o.serial);
    if (best < 0 || key < best_key) {
      best = static_cast<long>(i);
      best_key = key;
    }
  }
  return best;
}

void Oracle::on_alloc(int zone, void* obj, int flags, int cpu, int origin) {
  Zone& z = zones_.at(zone);
  auto addr = reinterpret_cast<uintptr_t>(obj);
  const char* zn = z.name.c_str();
  if (addr % 16 != 0)
    kenv::check_failed("alignment", "zone %s: object %p is not 16-byte aligned", zn, obj);
  if (z.size >= 64 && addr % 64 != 0 && b_.name() == "kmalloc_obj")
    kenv::check_failed("alignment", "zone %s: object %p is not cache-line aligned", zn, obj);
  void* owner = b_.owner(obj);
  if (owner != nullptr && owner != z.handle)
    kenv::check_failed("wrong-zone", "zone %s handed out %p, which belongs to another zone", zn,
                       obj);
  // Overlap with the neighbours in address order.
  auto next = addr_lower_bound(addr);
  if (next != by_addr_.end()) {
    const LiveObject& n = live_[next->second];
    if (n.addr == addr)
      kenv::check_failed("double-allocation", "zone %s handed out live object %p again", zn, obj);
    if (addr + z.size > n.addr)
      kenv::check_failed("overlap", "zone %s: object %p overlaps live object %p of zone %s", zn,
                         obj, reinterpret_cast<void*>(n.addr), zones_.at(n.zone).name.c_str());
  }
  if (next != by_addr_.begin()) {
    const LiveObject& p = live_[std::prev(next)->second];
    if (p.addr + p.size > addr)
      kenv::check_failed("overlap", "zone %s: object %p overlaps live object %p of zone %s", zn,
                         obj, reinterpret_cast<void*>(p.addr), zones_.at(p.zone).name.c_str());
  }
  touch_poisoned(obj, z.size);
  if (flags & M_ZERO) {
    const auto* b = static_cast<const unsigned char*>(obj);
    size_t i = first_nonzero(b, z.size);
    if (i < z.size)
      kenv::check_failed("m-zero", "zone %s: M_ZERO object %p is not zeroed (byte %zu is %u)",
                         zn, obj, i, b[i]);
  }
  LiveObject o{addr, zone, z.size, cpu, ++serial_, origin};
  fill(obj, z.size, o.serial);
  by_addr_.insert(next, {addr, live_.size()});
  live_.push_back(o);
  z.live++;
}

void Oracle::check_content(const LiveObject& o) {
  touch_poisoned(reinterpret_cast<const void*>(o.addr), o.size);
  size_t i = first_changed(o.addr, o.size, o.serial);
  if (i < o.size)
    kenv::check_failed("corruption", "zone %s: live object %p changed at offset %zu",
                       zones_.at(o.zone).name.c_str(), reinterpret_cast<void*>(o.addr), i);
}

LiveObject Oracle::take(size_t i) {
  LiveObject o = live_[i];
  check_content(o);
  by_addr_.erase(addr_lower_bound(o.addr));
  if (i != live_.size() - 1) {
    live_[i] = live_.back();
    addr_lower_bound(live_[i].addr)->second = i;
  }
  live_.pop_back();
  zones_.at(o.zone).live--;
  return o;
}

void Oracle::check_zone(int zone, bool compare_inuse, bool deep) {
  Zone& z = zones_.at(zone);
  std::vector<std::string> problems = b_.check(z.handle, deep);
  if (!problems.empty())
    kenv::check_failed("slab-consistency", "zone %s: %s", z.name.c_str(), problems[0].c_str());
  if (compare_inuse) {
    ZoneStats st = b_.counters(z.handle);
    if (st.inuse != z.live)
      kenv::check_failed("stats-mismatch", "zone %s: allocator counts %llu live objects, shadow %zu",
                         z.name.c_str(), static_cast<unsigned long long>(st.inuse), z.live);
  }
}

}  // namespace slabfuzz
