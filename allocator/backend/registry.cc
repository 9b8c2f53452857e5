// registry.cc - backends by name, for command lines and program headers, and the
// misuse messages shared by the backends that name theirs like kmalloc_obj.
#include "allocator/backend/backend.h"
#include "allocator/backend/names.h"

namespace slabfuzz {

uint64_t Backend::activity(void* zone) {
  ZoneStats st = stats(zone);
  uint64_t h = (st.allocs * 0x9e3779b97f4a7c15ULL) ^ (st.frees * 31) ^ (st.slabs << 48) ^
               (st.reserve_level << 40) ^ st.reserve_dips;
  return h | 1;
}

const char* Backend::misuse_phrase(Misuse m) const {
  switch (m) {
    case Misuse::kDoubleFree: return "double free";
    case Misuse::kWrongZone: return "freed to zone";
    case Misuse::kInterior: return "interior pointer";
    case Misuse::kForeign: return "is not in any slab";
  }
  return nullptr;
}

std::unique_ptr<Backend> make_backend(std::string_view name) {
  switch (backend_index(name)) {
    case 0: return make_kmalloc_obj_backend();
    case 1: return make_zalloc_backend();
    case 2: return make_objcache_backend();
    case 3: return make_kmalloc_backend();
  }
  return nullptr;
}

const std::vector<std::string>& backend_names() {
  static const std::vector<std::string> names(kBackendNames.begin(), kBackendNames.end());
  return names;
}

}  // namespace slabfuzz
