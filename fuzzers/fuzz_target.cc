// fuzz_target.cc - the engine entry points: LLVMFuzzerTestOneInput (libFuzzer, and
// AFL++ through libAFLDriver in persistent mode), and unless SLABFUZZ_NO_CUSTOM_MUTATOR
// the structure-aware LLVMFuzzerCustomMutator / LLVMFuzzerCustomCrossOver.
//
// A failing input is run a second time with the interleaving recorded (the run is
// deterministic, so it fails the same way); the report starts with the crash title,
// then the program in text form, the interleaving and the state; then abort().
//
// With SLABFUZZ_EXEC_COUNTER=FILE in the environment every execution adds one to the
// first 8-byte counter in FILE (mapped shared: the engine's fork-mode children, AFL++'s
// forked runs and restarted engines all add to one count), which ci/fuzz reads for its
// live numbers: libFuzzer prints its count only when it finds something. A conversion
// target also counts, in the four counters after it, the programs compared, those zalloc
// survived, those both survived, and those kmalloc_obj survived where zalloc did not
// (the conversion report's numbers; kCounters).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "fuzzers/harness.h"
#include "fuzzers/minimize.h"
#include "fuzzers/mutator.h"
#include "fuzzers/target.h"

using namespace slabfuzz;

// execs, compared, zalloc survived, both survived, reverse (kmalloc_obj only).
constexpr size_t kCounters = 5;
static uint64_t* g_exec_counter;

static void map_exec_counter() {
  const char* path = getenv("SLABFUZZ_EXEC_COUNTER");
  if (path == nullptr || *path == '\0') return;
  int fd = open(path, O_RDWR | O_CREAT, 0644);
  if (fd < 0) return;
  struct stat st;
  const off_t bytes = kCounters * sizeof(uint64_t);
  if (fstat(fd, &st) != 0 || (st.st_size < bytes && ftruncate(fd, bytes) != 0)) {
    close(fd);
    return;
  }
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m != MAP_FAILED) g_exec_counter = static_cast<uint64_t*>(m);
}

// `NAME_bin --minimize CRASH [--out FILE] [--max-seconds S]`: the minimizer, not the
// engine (both engines call this before they read their own flags).
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (wants_minimize(*argc, *argv)) exit(minimize_main(*argc, *argv, target_config()));
  map_exec_counter();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (g_exec_counter) __atomic_fetch_add(g_exec_counter, 1, __ATOMIC_RELAXED);
  Program p = decode(std::span<const uint8_t>(data, size));
  HarnessOptions o;
  o.target = target_config();
  RunResult r = run_program(p, o);
  if (g_exec_counter && r.zalloc_title) {
    bool z = r.zalloc_title->empty();
    uint64_t add[kCounters] = {0, 1, z, z && r.ok, r.reverse};
    for (size_t i = 1; i < kCounters; i++)
      if (add[i]) __atomic_fetch_add(&g_exec_counter[i], 1, __ATOMIC_RELAXED);
  }
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
  // (A quarter of the time, tried in session 12 because plain libFuzzer had found three
  // of the zoo's six races faster, made the custom mutator slower on the two races
  // measured: SWAP_OUTSIDE_CRIT 36.1 / 76.7 / 307.8 s, REMOTE_FREE_NONATOMIC 67.2 / 193.4
  // / 199.3 s, against medians of 19.6 and 53.7 s with one in 16.)
  if (seed % 16 == 0) return LLVMFuzzerMutate(data, size, max_size);
  return mutate_bytes(data, size, max_size, seed);
}

extern "C" size_t LLVMFuzzerCustomCrossOver(const uint8_t* d1, size_t s1, const uint8_t* d2,
                                            size_t s2, uint8_t* out, size_t max_out,
                                            unsigned int seed) {
  return crossover_bytes(d1, s1, d2, s2, out, max_out, seed);
}
#endif
