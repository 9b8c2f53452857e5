// access_probe.h - a few functions compiled as the code under test is (with the
// shared-access callbacks of fuzzers/coverage.bzl), for the runtimes' own tests: what
// the deterministic runtime does at the loads and stores of instrumented code.
//
// Invariant: each function is out of line and does exactly the accesses it names, in
// that order, and nothing else to memory but its own stack.
#ifndef SLABFUZZ_ALLOCATOR_KENV_ACCESS_PROBE_H_
#define SLABFUZZ_ALLOCATOR_KENV_ACCESS_PROBE_H_

namespace kenv::probe {

// A read-modify-write split in two: loads *p, then stores the value plus one. No
// preemption point lies between the two accesses.
void racy_increment(long* p);
// The publication in the wrong order: loads *idx, stores *idx + 1 to it (publishes
// slot i), then stores i + 1 to slots[i]. No preemption point lies between.
void publish_early(long* idx, long* slots);
// One store; one load.
void store(long* p, long v);
long load(const long* p);
// n stores and n loads to a buffer on its own stack: accesses no other thread can reach.
long stack_work(int n);

}  // namespace kenv::probe

#endif  // SLABFUZZ_ALLOCATOR_KENV_ACCESS_PROBE_H_
