// zalloc_backend.cc - zalloc behind the backend interface: a zone is a vm_zone;
// ZoneOptions.interrupt makes it ZONE_INTERRUPT (nentries its cap), .system
// ZONE_USE_RESERVE, .limit caps an ordinary zone's items; boot memory is threaded on
// with zbootinit() (any time, before or after the zone can grow). No spare-slab
// reserve: zalloc never had one.
#include <map>
#include <memory>
#include <mutex>

#include "allocator/backend/backend.h"
#include "allocator/kenv/kenv.h"
#include "allocator/kenv/page_source.h"
#include "allocator/zalloc/zalloc.h"

namespace slabfuzz {
namespace {

class ZallocBackend final : public Backend {
 public:
  std::string_view name() const override { return "zalloc"; }
  void* zone_create(const ZoneOptions& o) override {
    auto name = std::make_unique<std::string>(o.name);  // zalloc keeps the pointer
    size_t rounded = (o.objsize + ZONE_ROUNDING - 1) & ~size_t{ZONE_ROUNDING - 1};
    long nentries = o.interrupt ? static_cast<long>(o.nentries)
                                : static_cast<long>(o.limit / rounded);
    int flags = (o.interrupt ? ZONE_INTERRUPT : 0) | (o.system ? ZONE_USE_RESERVE : 0);
    vm_zone_t z = zinit(name->c_str(), o.objsize, nentries, flags);
    kenv::host_lock_guard g(mu_);
    names_[z] = std::move(name);
    return z;
  }
  void zone_destroy(void* zone) override {
    zdestroy(Z(zone));
    kenv::host_lock_guard g(mu_);
    names_.erase(Z(zone));
  }
  void* alloc(void* zone, int flags) override { return zalloc_flags(Z(zone), flags); }
  void free(void* zone, void* obj) override { zfree(Z(zone), obj); }
  size_t boot_granule() const override { return kenv::PAGE_SIZE; }
  int boot_memory(void* zone, void* mem, size_t bytes) override {
    vm_zone_t z = Z(zone);
    zbootinit(z, z->zname, z->zsize, mem, static_cast<long>(bytes / z->zsize));
    return static_cast<int>(bytes / kenv::PAGE_SIZE);
  }
  void drain_cpu(void* zone) override { zalloc_drain_cpu(Z(zone)); }
  ZoneStats stats(void* zone) override {
    zalloc_stats z = zalloc_stats_get(Z(zone));
    ZoneStats s;
    s.allocs = z.requests;
    s.frees = z.frees;
    s.inuse = static_cast<uint64_t>(z.used);
    s.slabs = z.chunks;
    s.boot_slabs = z.boot_items > 0 ? 1 : 0;
    s.failed_allocs = z.failures;
    s.objsize = z.size;
    return s;
  }
  std::vector<std::string> check(void* zone, bool deep) override { return zcheck(Z(zone), deep); }
  void* owner(const void* obj) override { return zalloc_owner(obj); }
  void reset() override {
    zalloc_reset();
    kenv::host_lock_guard g(mu_);
    names_.clear();
  }

 private:
  static vm_zone_t Z(void* z) { return static_cast<vm_zone_t>(z); }
  std::mutex mu_;  // zones come and go on any thread (kenv::host_lock_guard)
  std::map<vm_zone_t, std::unique_ptr<std::string>> names_;
};

}  // namespace

std::unique_ptr<Backend> make_zalloc_backend() { return std::make_unique<ZallocBackend>(); }

}  // namespace slabfuzz
