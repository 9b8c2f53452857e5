// target.h - the configuration a fuzz target pins, chosen at compile time:
//   -DSLABFUZZ_TARGET_NAIVE     kmalloc_obj as upstream (no boot slabs, no reserve):
//                               the fuzzer must find the boot failure and the deadlock;
//   -DSLABFUZZ_TARGET_ZALLOC    zalloc, as today's kernel runs the VM zones (zbootinit,
//                               ZONE_INTERRUPT): the baseline, nothing may be found;
//   -DSLABFUZZ_TARGET_CONVERSION   the conversion proof: each program on zalloc, then
//                               on the embedded default; a promise zalloc kept and
//                               kmalloc_obj broke is the finding (nothing may be found);
//   -DSLABFUZZ_TARGET_CONVERSION_NAIVE  the same against the naive conversion: the
//                               negative control, which must find (A) and (B);
//   (default)                   the embedded default, kmalloc_obj with (A) and (B):
//                               reserve >= 1 and boot slabs >= 1, nothing may be found.
#ifndef SLABFUZZ_FUZZERS_TARGET_H_
#define SLABFUZZ_FUZZERS_TARGET_H_

#include "allocator/backend/names.h"
#include "fuzzers/harness.h"

namespace slabfuzz {

inline TargetConfig target_config() {
  TargetConfig t;
#if defined(SLABFUZZ_TARGET_ZALLOC)
  t = zalloc_target();
#elif defined(SLABFUZZ_TARGET_NAIVE) || defined(SLABFUZZ_TARGET_CONVERSION_NAIVE)
  t.backend = backend_index("kmalloc_obj");
  t.mode = VmMode::kNaive;
#else
  t.backend = backend_index("kmalloc_obj");
  t.mode = VmMode::kReserved;
  t.min_reserve = 1;
  t.min_boot_slabs = 1;
#endif
#if defined(SLABFUZZ_TARGET_CONVERSION) || defined(SLABFUZZ_TARGET_CONVERSION_NAIVE)
  t.compare_with_zalloc = true;
#endif
  return t;
}

inline const char* target_name() {
#if defined(SLABFUZZ_TARGET_ZALLOC)
  return "zalloc (today's kernel)";
#elif defined(SLABFUZZ_TARGET_CONVERSION)
  return "conversion: zalloc against kmalloc_obj reserved";
#elif defined(SLABFUZZ_TARGET_CONVERSION_NAIVE)
  return "conversion: zalloc against kmalloc_obj naive";
#elif defined(SLABFUZZ_TARGET_NAIVE)
  return "kmalloc_obj naive";
#else
  return "kmalloc_obj reserved";
#endif
}

}  // namespace slabfuzz

#endif  // SLABFUZZ_FUZZERS_TARGET_H_
