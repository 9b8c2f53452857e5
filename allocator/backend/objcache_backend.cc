// objcache_backend.cc - objcache behind the backend interface: a zone is an objcache
// over kmalloc (its own malloc_type), the zone limit its object budget. Objects come
// back from magazines as they were put (upstream has no M_ZERO): the adapter zeroes
// them for M_ZERO. An interior pointer is reported as a foreign object.
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "allocator/backend/backend.h"
#include "allocator/kenv/kenv.h"
#include "allocator/kmalloc/kmalloc.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"
#include "allocator/objcache/objcache.h"

namespace slabfuzz {
namespace {

struct OcZone {
  std::string name;
  size_t size;
  malloc_type type;
  objcache* oc = nullptr;
};

class ObjcacheBackend final : public Backend {
 public:
  ~ObjcacheBackend() override { reset_zones(); }
  std::string_view name() const override { return "objcache"; }
  void* zone_create(const ZoneOptions& o) override {
    auto* z = new OcZone{o.name, o.objsize, {}};
    kmalloc_type_init(&z->type, z->name.c_str(), 0);
    int budget = o.limit ? static_cast<int>(o.limit / kmalloc_good_size(o.objsize)) : 0;
    if (o.limit && budget == 0) budget = 1;
    z->oc = objcache_create_mbacked(&z->type, o.objsize, budget, 0, nullptr, nullptr, nullptr);
    kenv::host_lock_guard g(mu_);
    by_cache_[z->oc] = z;
    return z;
  }
  void zone_destroy(void* zone) override {
    OcZone* z = Z(zone);
    objcache_destroy(z->oc);
    bool last;
    {
      kenv::host_lock_guard g(mu_);
      by_cache_.erase(z->oc);
      last = by_cache_.empty();
    }
    delete z;
    if (last) kmalloc_fini();  // the last cache: kmalloc's class zones go too
  }
  void* alloc(void* zone, int flags) override {
    void* p = objcache_get(Z(zone)->oc, flags);
    if (p != nullptr && (flags & M_ZERO)) memset(p, 0, Z(zone)->size);
    return p;
  }
  void free(void* zone, void* obj) override { objcache_put(Z(zone)->oc, obj); }
  void drain_cpu(void* zone) override { objcache_drain_cpu(Z(zone)->oc); }
  int poll() override { return objcache_reclaim_all() + kmalloc_poll(); }
  ZoneStats stats(void* zone) override {
    objcache_stats o = objcache_stats_get(Z(zone)->oc);
    ZoneStats s;
    s.allocs = o.gets;
    s.frees = o.puts;
    s.inuse = static_cast<uint64_t>(o.outstanding);
    s.failed_allocs = o.gets_null;
    s.objsize = kmalloc_good_size(Z(zone)->size);
    return s;
  }
  std::vector<std::string> check(void* zone, bool deep) override {
    std::vector<std::string> out = objcache_check(Z(zone)->oc, deep);
    if (kmalloc_zone* cz = kmalloc_class_zone(Z(zone)->size)) {
      std::vector<std::string> more = kmalloc_obj_check(cz, deep);
      out.insert(out.end(), more.begin(), more.end());
    }
    return out;
  }
  void* owner(const void* obj) override {
    objcache* oc = objcache_owner(obj);
    kenv::host_lock_guard g(mu_);
    auto it = by_cache_.find(oc);
    return it == by_cache_.end() ? nullptr : it->second;
  }
  void reset() override {
    objcache_reset();
    reset_zones();
    kmalloc_reset();
    kmalloc_obj_reset();
  }
  const char* misuse_phrase(Misuse m) const override {
    switch (m) {
      case Misuse::kInterior:
      case Misuse::kForeign: return "is not an object of any objcache";
      default: return Backend::misuse_phrase(m);
    }
  }

 private:
  static OcZone* Z(void* z) { return static_cast<OcZone*>(z); }
  void reset_zones() {
    kenv::host_lock_guard g(mu_);
    for (auto& [oc, z] : by_cache_) delete z;
    by_cache_.clear();
  }
  std::mutex mu_;  // a host lock (kenv::host_lock_guard): no preemption point inside
  std::unordered_map<objcache*, OcZone*> by_cache_;
};

}  // namespace

std::unique_ptr<Backend> make_objcache_backend() { return std::make_unique<ObjcacheBackend>(); }

}  // namespace slabfuzz
