// mutator.h - the one mutation library both engines use (libFuzzer's custom mutator
// and crossover, AFL++'s afl_custom_fuzz). It works on decoded programs: insert,
// delete, duplicate, swap, splice and field-level changes of records, header changes,
// and crossover of two programs; the result is re-encoded in canonical form, so it
// always decodes, and never exceeds max_size.
#ifndef SLABFUZZ_FUZZERS_MUTATOR_H_
#define SLABFUZZ_FUZZERS_MUTATOR_H_

#include <cstddef>
#include <cstdint>

#include "fuzzers/program.h"

namespace slabfuzz {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  bool one_in(uint64_t n) { return below(n) == 0; }

 private:
  uint64_t s_;
};

// A random operation for program p (weighted toward allocations and frees).
Op random_op(const Program& p, Rng& rng);
// A random program of up to max_ops operations.
Program random_program(Rng& rng, size_t max_ops);

// Mutates p in place (one to a few structural or field mutations).
void mutate_program(Program* p, Rng& rng, size_t max_ops);
// Changes only the schedule of p: the scheduling seed, the PCT depth and change points
// at accesses, the clock, and the directed preemptions and timers (placed, moved,
// retimed, removed). What the CPUs do stays as it is.
void mutate_schedule(Program* p, Rng& rng, size_t max_ops);

// Schedule-focused mutation (LACE's second phase): the target notes an input whose run
// reached interleaving pairs new to the process (kenv's alias coverage), and when the
// mutator is handed that input again it spends half its mutations on its schedule
// alone (and any input one mutation in eight). A fixed-size table of input hashes in
// this process (libFuzzer runs the mutator beside the target; AFL++'s mutator, in
// afl-fuzz, never hears of one, and spends a fixed share on schedules instead:
// mutate_schedule_bytes).
void note_schedule_seed(const uint8_t* data, size_t size);
bool is_schedule_seed(const uint8_t* data, size_t size);

// A child of a and b: a prefix of one, a suffix of the other, or an interleaving.
Program crossover_programs(const Program& a, const Program& b, Rng& rng, size_t max_ops);

// Byte-level entry points for the engines. Return the new size (<= max_size).
size_t mutate_bytes(uint8_t* data, size_t size, size_t max_size, uint64_t seed);
// mutate_bytes() after inserting random operations until the program has min_ops (for
// AFL++, whose queue favours the smallest input per edge: races need longer programs).
size_t grow_bytes(uint8_t* data, size_t size, size_t max_size, size_t min_ops, uint64_t seed);
// mutate_schedule() on the encoded program: for AFL++, which cannot tell which inputs
// reached new interleaving pairs, a fixed share of every input's mutations.
size_t mutate_schedule_bytes(uint8_t* data, size_t size, size_t max_size, uint64_t seed);
size_t crossover_bytes(const uint8_t* d1, size_t s1, const uint8_t* d2, size_t s2, uint8_t* out,
                       size_t max_out, uint64_t seed);

}  // namespace slabfuzz

#endif  // SLABFUZZ_FUZZERS_MUTATOR_H_
