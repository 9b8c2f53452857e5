// backend.h - the one small interface every allocator under test implements, so that
// fuzzers, stress drivers and the VM consumers run against any of them (and against
// each other, in differential runs).
//
// Contract: every call is made from a kenv kernel thread (curthread() != nullptr);
// a zone handle is valid from zone_create() to zone_destroy(); alloc() honours the
// malloc.h flags (never sleeps with M_RNOWAIT, NULL only with M_NULLOK); free()
// panics on misuse the backend can detect; check() returns the backend's own
// invariant violations (empty when consistent) and is called only when quiescent.
#ifndef SLABFUZZ_ALLOCATOR_BACKEND_BACKEND_H_
#define SLABFUZZ_ALLOCATOR_BACKEND_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace slabfuzz {

struct ZoneOptions {
  std::string name;
  size_t objsize = 64;
  size_t limit = 0;        // bytes; 0: none
  int reserve = 0;         // spare slabs (backends with a reserve)
  bool interrupt = false;  // zalloc ZONE_INTERRUPT-style: preallocated, never blocks
  size_t nentries = 0;     // with interrupt: the cap
  bool system = false;     // growth from the system page tier (zalloc ZONE_USE_RESERVE)
};

// The misuse a driver may provoke, to check that the backend catches it.
enum class Misuse { kDoubleFree, kWrongZone, kInterior, kForeign };

struct ZoneStats {
  uint64_t allocs = 0, frees = 0, inuse = 0;
  uint64_t slabs = 0, boot_slabs = 0;
  uint64_t reserve_target = 0, reserve_level = 0, reserve_objects = 0, reserve_dips = 0;
  uint64_t refills_tried = 0, refills_failed = 0, failed_allocs = 0;
  size_t objsize = 0;  // the object size the backend really gives
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  virtual void* zone_create(const ZoneOptions& opts) = 0;
  virtual void zone_destroy(void* zone) = 0;
  virtual void* alloc(void* zone, int flags) = 0;
  virtual void free(void* zone, void* obj) = 0;

  // (A): boot memory. granule() is the size and alignment it must come in; 0 if the
  // backend takes no boot memory.
  virtual size_t boot_granule() const { return 0; }
  virtual int boot_memory(void* /*zone*/, void* /*mem*/, size_t /*bytes*/) { return 0; }
  // (B): spare slabs, where supported.
  virtual bool has_reserve() const { return false; }
  virtual void set_reserve(void* /*zone*/, int /*x*/) {}

  virtual void drain_cpu(void* /*zone*/) {}
  virtual int poll() { return 0; }  // retire surplus memory; returns units retired
  virtual ZoneStats stats(void* zone) = 0;
  // stats() but for reserve_objects, which may be left 0: a backend may need a lock
  // for it that the rest does without (checkers read these around every allocation).
  virtual ZoneStats counters(void* zone) { return stats(zone); }
  // Changes whenever the zone's state may have: a checker skips a zone whose activity
  // is what it was at the last check. By default a digest of the statistics.
  virtual uint64_t activity(void* zone);
  // deep: object by object (slower); otherwise indices, lists and counters.
  virtual std::vector<std::string> check(void* zone, bool deep = true) = 0;
  // The zone that owns obj, or nullptr if the backend cannot tell.
  virtual void* owner(const void* /*obj*/) { return nullptr; }
  // Forget everything between runs (after the page source's teardown).
  virtual void reset() {}
  // A substring of the panic with which the backend reports the misuse, or nullptr
  // if it does not detect it.
  virtual const char* misuse_phrase(Misuse m) const;
};

std::unique_ptr<Backend> make_kmalloc_obj_backend();
std::unique_ptr<Backend> make_zalloc_backend();
std::unique_ptr<Backend> make_objcache_backend();
std::unique_ptr<Backend> make_kmalloc_backend();

// Backends by name (backend_names(): "kmalloc_obj", "zalloc", "objcache", "kmalloc");
// nullptr for an unknown name.
std::unique_ptr<Backend> make_backend(std::string_view name);
const std::vector<std::string>& backend_names();

}  // namespace slabfuzz

#endif  // SLABFUZZ_ALLOCATOR_BACKEND_BACKEND_H_
