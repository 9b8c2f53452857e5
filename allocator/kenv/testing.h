// testing.h - helpers for tests on the deterministic runtime (testonly).
//
// consume_handoff: the consumer side of a cross-CPU free test. Producers on one CPU
// push objects onto `handoff` and set `done`; consumers on other CPUs free them with
// `release` until the producers are done and nothing is left. The vector is shared
// without a lock: fibers of the deterministic runtime switch only at preemption
// points, and none lies between the emptiness check and the pop.
#ifndef SLABFUZZ_ALLOCATOR_KENV_TESTING_H_
#define SLABFUZZ_ALLOCATOR_KENV_TESTING_H_

#include <vector>

#include "allocator/kenv/kenv.h"

namespace kenv {

template <typename Release>
void consume_handoff(std::vector<void*>& handoff, const bool& done, Release release) {
  while (!done || !handoff.empty()) {
    if (handoff.empty()) {
      cpu_spinwait();  // a busy-wait must let others run (PCT)
      continue;
    }
    void* p = handoff.back();
    handoff.pop_back();
    release(p);
  }
}

}  // namespace kenv

#endif  // SLABFUZZ_ALLOCATOR_KENV_TESTING_H_
