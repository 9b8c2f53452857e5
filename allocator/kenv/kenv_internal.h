// kenv_internal.h - what the runtimes and kenv_common.cc share and nothing else sees.
// Invariant: rt_panic never returns; in the deterministic runtime it abandons the run
// and hands the title back to Runtime::run().
#ifndef SLABFUZZ_ALLOCATOR_KENV_KENV_INTERNAL_H_
#define SLABFUZZ_ALLOCATOR_KENV_KENV_INTERNAL_H_

#include <string>

namespace kenv {

[[noreturn]] void rt_panic(const std::string& title, const std::string& message);
std::string stable_title(const std::string& check, const std::string& detail);
struct RuntimeConfig;
struct globaldata;
// Both runtimes: checks the CPU count (exit 2 with a message if out of range) and
// numbers the per-CPU data.
void init_cpus(const RuntimeConfig& cfg, globaldata* gd);

}  // namespace kenv

#endif  // SLABFUZZ_ALLOCATOR_KENV_KENV_INTERNAL_H_
