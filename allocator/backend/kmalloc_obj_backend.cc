// kmalloc_obj_backend.cc - kmalloc_obj behind the backend interface: zones are
// kmalloc_obj zones, boot memory becomes boot slabs (A), the reserve is (B).
#include "allocator/backend/backend.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"

namespace slabfuzz {
namespace {

class KmallocObjBackend final : public Backend {
 public:
  std::string_view name() const override { return "kmalloc_obj"; }
  void* zone_create(const ZoneOptions& o) override {
    kmalloc_zone* z = kmalloc_create_obj(o.name.c_str(), o.objsize, o.limit);
    if (o.reserve > 0) kmalloc_obj_set_reserve(z, o.reserve);
    return z;
  }
  void zone_destroy(void* zone) override { kmalloc_destroy_obj(Z(zone)); }
  void* alloc(void* zone, int flags) override {
    return kmalloc_obj(kmalloc_obj_size(Z(zone)), Z(zone), flags);
  }
  void free(void* zone, void* obj) override { kfree_obj(obj, Z(zone)); }
  size_t boot_granule() const override { return KMALLOC_SLAB_SIZE; }
  int boot_memory(void* zone, void* mem, size_t bytes) override {
    return kmalloc_obj_boot_slabs(Z(zone), mem, bytes);
  }
  bool has_reserve() const override { return true; }
  void set_reserve(void* zone, int x) override {
    kmalloc_obj_set_reserve(Z(zone), x);
    kmalloc_obj_reserve_refill(Z(zone));
  }
  void drain_cpu(void* zone) override { kmalloc_obj_drain_cpu(Z(zone)); }
  int poll() override { return kmalloc_obj_poll_all(); }
  ZoneStats stats(void* zone) override { return convert(kmalloc_obj_stats(Z(zone))); }
  ZoneStats counters(void* zone) override { return convert(kmalloc_obj_counters(Z(zone))); }
  static ZoneStats convert(const kmalloc_zone_stats& k) {
    ZoneStats s;
    s.allocs = k.allocs;
    s.frees = k.frees;
    s.inuse = k.inuse;
    s.slabs = k.slabs;
    s.boot_slabs = k.boot_slabs;
    s.reserve_target = k.reserve_target;
    s.reserve_level = k.reserve_level;
    s.reserve_objects = k.reserve_objects;
    s.reserve_dips = k.reserve_dips;
    s.refills_tried = k.refills_tried;
    s.refills_failed = k.refills_failed;
    s.failed_allocs = k.failed_allocs;
    s.objsize = k.objsize;
    return s;
  }
  uint64_t activity(void* zone) override { return kmalloc_obj_activity(Z(zone)); }
  std::vector<std::string> check(void* zone, bool deep) override {
    return kmalloc_obj_check(Z(zone), deep);
  }
  void* owner(const void* obj) override { return kmalloc_obj_owner(obj); }
  void reset() override { kmalloc_obj_reset(); }

 private:
  static kmalloc_zone* Z(void* z) { return static_cast<kmalloc_zone*>(z); }
};

}  // namespace

std::unique_ptr<Backend> make_kmalloc_obj_backend() {
  return std::make_unique<KmallocObjBackend>();
}

}  // namespace slabfuzz
