// kmalloc_backend.cc - general kmalloc behind the backend interface: a "zone" is a
// malloc_type whose every allocation has the zone's size (so its accounting can be
// checked exactly: memuse == inuse * class size). A small object freed with another
// type is not detected (both types share the class zones), as upstream.
#include <cstring>
#include <mutex>

#include "allocator/backend/backend.h"
#include "allocator/kenv/kenv.h"
#include "allocator/kmalloc/kmalloc.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"

namespace slabfuzz {
namespace {

struct KmZone {
  std::string name;
  size_t size;
  malloc_type type;
};

class KmallocBackend final : public Backend {
 public:
  ~KmallocBackend() override { reset_zones(); }
  std::string_view name() const override { return "kmalloc"; }
  void* zone_create(const ZoneOptions& o) override {
    kmalloc_init();
    auto* z = new KmZone{o.name, o.objsize, {}};
    kmalloc_type_init(&z->type, z->name.c_str(), o.limit);
    kenv::host_lock_guard g(mu_);
    zones_.push_back(z);
    return z;
  }
  void zone_destroy(void* zone) override {
    KmZone* z = Z(zone);
    kmalloc_type_stats s = kmalloc_type_stats_get(&z->type);
    if (s.inuse != 0)
      kenv::panic("kmalloc: type %s destroyed with %lld allocations", z->name.c_str(),
                  static_cast<long long>(s.inuse));
    bool last;
    {
      kenv::host_lock_guard g(mu_);
      std::erase(zones_, z);
      last = zones_.empty();
    }
    delete z;
    if (last) kmalloc_fini();  // the last type: the class zones go too
  }
  void* alloc(void* zone, int flags) override {
    return kmalloc(Z(zone)->size, &Z(zone)->type, flags);
  }
  void free(void* zone, void* obj) override { kfree(obj, &Z(zone)->type); }
  void drain_cpu(void* zone) override {
    if (kmalloc_zone* cz = kmalloc_class_zone(Z(zone)->size)) kmalloc_obj_drain_cpu(cz);
  }
  int poll() override { return kmalloc_poll(); }
  ZoneStats stats(void* zone) override {
    kmalloc_type_stats k = kmalloc_type_stats_get(&Z(zone)->type);
    ZoneStats s;
    s.allocs = k.calls;
    s.inuse = static_cast<uint64_t>(k.inuse);
    s.frees = k.calls - s.inuse;
    s.failed_allocs = k.failed;
    s.objsize = kmalloc_good_size(Z(zone)->size);
    return s;
  }
  std::vector<std::string> check(void* zone, bool deep) override {
    KmZone* z = Z(zone);
    std::vector<std::string> out;
    kmalloc_type_stats k = kmalloc_type_stats_get(&z->type);
    int64_t want = k.inuse * static_cast<int64_t>(kmalloc_good_size(z->size));
    if (k.inuse < 0 || k.memuse != want)
      out.push_back("type " + z->name + ": memuse " + std::to_string(k.memuse) + " for " +
                    std::to_string(k.inuse) + " allocations of " +
                    std::to_string(kmalloc_good_size(z->size)) + " bytes");
    if (kmalloc_zone* cz = kmalloc_class_zone(z->size)) {
      std::vector<std::string> more = kmalloc_obj_check(cz, deep);
      out.insert(out.end(), more.begin(), more.end());
    }
    return out;
  }
  void reset() override {
    reset_zones();
    kmalloc_reset();
    kmalloc_obj_reset();
  }
  const char* misuse_phrase(Misuse m) const override {
    return m == Misuse::kWrongZone ? nullptr : Backend::misuse_phrase(m);
  }

 private:
  static KmZone* Z(void* z) { return static_cast<KmZone*>(z); }
  void reset_zones() {
    kenv::host_lock_guard g(mu_);
    for (KmZone* z : zones_) delete z;
    zones_.clear();
  }
  std::mutex mu_;  // a host lock (kenv::host_lock_guard): no preemption point inside
  std::vector<KmZone*> zones_;
};

}  // namespace

std::unique_ptr<Backend> make_kmalloc_backend() { return std::make_unique<KmallocBackend>(); }

}  // namespace slabfuzz
