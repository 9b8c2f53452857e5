// names.h - the backends' names in registry order (a program header's backend index
// counts in this order), for code that names backends without linking them.
#ifndef SLABFUZZ_ALLOCATOR_BACKEND_NAMES_H_
#define SLABFUZZ_ALLOCATOR_BACKEND_NAMES_H_

#include <array>
#include <string_view>

namespace slabfuzz {

inline constexpr std::array<std::string_view, 4> kBackendNames = {"kmalloc_obj", "zalloc",
                                                                  "objcache", "kmalloc"};

// The index of a backend's name, or -1.
inline int backend_index(std::string_view name) {
  for (size_t i = 0; i < kBackendNames.size(); i++)
    if (kBackendNames[i] == name) return static_cast<int>(i);
  return -1;
}

}  // namespace slabfuzz

#endif  // SLABFUZZ_ALLOCATOR_BACKEND_NAMES_H_
