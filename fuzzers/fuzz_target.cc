// fuzz_target.cc - the engine entry points: LLVMFuzzerTestOneInput (libFuzzer, and
// AFL++ through libAFLDriver in persistent mode), and unless SLABFUZZ_NO_CUSTOM_MUTATOR
// the structure-aware LLVMFuzzerCustomMutator / LLVMFuzzerCustomCrossOver.
//
// A failing input is run a second time with the interleaving recorded (the run is
// deterministic, so it fails the same way); the report starts with the crash title,
// then the program in text form, the interleaving and the state; then abort().
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "fuzzers/harness.h"
#include "fuzzers/minimize.h"
#include "fuzzers/mutator.h"
#include "fuzzers/target.h"

using namespace slabfuzz;

// `NAME_bin --minimize CRASH [--out FILE] [--max-seconds S]`: the minimizer, not the
// engine (both engines call this before they read their own flags).
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (wants_minimize(*argc, *argv)) exit(minimize_main(*argc, *argv, target_config()));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Program p = decode(std::span<const uint8_t>(data, size));
  HarnessOptions o;
  o.target = target_config();
  RunResult r = run_program(p, o);
#ifndef SLABFUZZ_NO_CUSTOM_MUTATOR
  // An interleaving pair the process had not reached: its schedule is worth varying.
  if (r.new_alias_pairs > 0) note_schedule_seed(data, size);
#endif
  if (!r.ok) {
    o.trace = true;
    RunResult again = run_program(p, o);
    fprintf(stderr, "%s\n", crash_report(effective_program(p, o.target), again).c_str());
    if (again.title != r.title)
      fprintf(stderr, "slabfuzz: harness: the second run ended differently: %s\n",
              again.title.c_str());
    fflush(stderr);
    abort();
  }
  return 0;
}

#ifndef SLABFUZZ_NO_CUSTOM_MUTATOR
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  // Now and then a byte-level mutation: it reaches values the record mutations do not.
  if (seed % 16 == 0) return LLVMFuzzerMutate(data, size, max_size);
  return mutate_bytes(data, size, max_size, seed);
}

extern "C" size_t LLVMFuzzerCustomCrossOver(const uint8_t* d1, size_t s1, const uint8_t* d2,
                                            size_t s2, uint8_t* out, size_t max_out,
                                            unsigned int seed) {
  return crossover_bytes(d1, s1, d2, s2, out, max_out, seed);
}
#endif
