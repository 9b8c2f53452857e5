// kenv_internal.h - what the runtimes and kenv_common.cc share and nothing else sees.
// Invariant: rt_panic never returns; in the deterministic runtime it abandons the run
// and hands the title back to Runtime::run().
#ifndef SLABFUZZ_ALLOCATOR_KENV_KENV_INTERNAL_H_
#define SLABFUZZ_ALLOCATOR_KENV_KENV_INTERNAL_H_

#include <string>

namespace kenv {

[[noreturn]] void rt_panic(const std::string& title, const std::string& message);
std::string stable_title(const std::string& check, const std::string& detail);
const void* boot_chan();

}  // namespace kenv

#endif  // SLABFUZZ_ALLOCATOR_KENV_KENV_INTERNAL_H_
