// registry.cc - backends by name, for command lines and program headers.
#include "allocator/backend/backend.h"

namespace slabfuzz {

std::unique_ptr<Backend> make_backend(std::string_view name) {
  if (name == "kmalloc_obj") return make_kmalloc_obj_backend();
  return nullptr;
}

std::vector<std::string> backend_names() { return {"kmalloc_obj"}; }

}  // namespace slabfuzz
