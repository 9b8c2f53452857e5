// afl_mutator.cc - AFL++'s custom mutator (AFL_CUSTOM_MUTATOR_LIBRARY): the same
// structure-aware mutation and crossover as libFuzzer's, behind afl_custom_fuzz, but
// that short programs are grown first (see kMinOps).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzzers/mutator.h"

namespace {
// AFL++ favours, for each edge, the smallest input that reaches it, and its queue fills
// with programs of one or two operations; a race needs a dozen and more. A program
// shorter than kMinOps operations is first grown to that length with random ones.
constexpr size_t kMinOps = 16;
constexpr size_t kGrowBelow = slabfuzz::kHeaderSize + kMinOps * slabfuzz::kRecordSize;
// A quarter of the other mutations vary the schedule alone (LACE's second phase): the
// target's note of inputs with new interleaving pairs stays in its own process, so
// AFL++'s mutator gives every input that share (its queue already keeps the inputs
// whose alias pairs were new, in the edge map).

struct State {
  uint64_t seed;
  std::vector<uint8_t> buf;
};
}  // namespace

extern "C" void* afl_custom_init(void* /*afl*/, unsigned int seed) {
  auto* s = new State;
  s->seed = seed;
  return s;
}

extern "C" size_t afl_custom_fuzz(void* data, uint8_t* in, size_t in_size, uint8_t** out,
                                  uint8_t* add, size_t add_size, size_t max_size) {
  auto* s = static_cast<State*>(data);
  s->buf.assign(in, in + in_size);
  s->buf.resize(std::max(max_size, in_size));
  uint64_t seed = ++s->seed * 0x9e3779b97f4a7c15ULL;
  size_t n;
  if (add != nullptr && add_size > 0 && seed % 4 == 0)
    n = slabfuzz::crossover_bytes(in, in_size, add, add_size, s->buf.data(), max_size, seed);
  else if (in_size < kGrowBelow)
    n = slabfuzz::grow_bytes(s->buf.data(), in_size, max_size, kMinOps, seed);
  else if (seed % 4 == 1)
    n = slabfuzz::mutate_schedule_bytes(s->buf.data(), in_size, max_size, seed);
  else
    n = slabfuzz::mutate_bytes(s->buf.data(), in_size, max_size, seed);
  *out = s->buf.data();
  return n;
}

extern "C" void afl_custom_deinit(void* data) { delete static_cast<State*>(data); }
