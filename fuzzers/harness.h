// harness.h - runs a program on the deterministic runtime against a backend and the
// VM consumers, under the oracle, and says how it ended.
//
// Each CPU's operations (in program order) run as that CPU's kernel thread; the
// pageout daemon and the allocator's poller run as daemons; the scheduler interleaves
// them from the header's seed. Same program, same options: same interleaving, same
// result. Between runs every piece of global state (page source, boot phase,
// allocator registries) is reset, so runs do not influence each other.
#ifndef SLABFUZZ_FUZZERS_HARNESS_H_
#define SLABFUZZ_FUZZERS_HARNESS_H_

#include <optional>
#include <string>
#include <vector>

#include "allocator/kenv/runtime.h"
#include "allocator/vm/vm.h"
#include "fuzzers/program.h"

namespace slabfuzz {

// What a fuzz target pins, whatever the input says.
struct TargetConfig {
  std::optional<int> backend;  // index into backend_names()
  std::optional<VmMode> mode;  // naive or reserved (the zalloc backend runs zalloc mode)
  int min_reserve = 0;
  int min_boot_slabs = 0;
  // The conversion proof (conversion_fuzz): the program runs first on zalloc, as today's
  // kernel has the VM zones, then as this target says; a promise the zalloc run kept
  // and this one broke is the finding (see compare_runs in harness.cc).
  bool compare_with_zalloc = false;
};

struct HarnessOptions {
  TargetConfig target;
  bool trace = false;      // record the interleaving (for reports)
  int check_every = 64;    // object-by-object check every N quiescent operations (and at
                           // teardown); the counters-and-lists check runs after every one
};

struct RunResult {
  bool ok = true;
  std::string title;       // "slabfuzz: <check>: <detail>" when !ok
  std::string report;      // the state at the failure
  std::vector<std::string> trace;
  uint64_t steps = 0;
  uint64_t accesses = 0;         // shared accesses of the code under test
  uint64_t alias_pairs = 0;      // accesses to what another thread stored last
  uint64_t new_alias_pairs = 0;  // of them, pairs of sites new to this process
  bool expected_misuse = false;  // ended by a misuse the allocator rightly caught
  uint64_t objects = 0;          // objects the operations and interrupts allocated
  // compare_with_zalloc only: how the zalloc run ended ("" clean), and whether this
  // run kept what zalloc broke (the reverse of a finding: counted, not a crash).
  std::optional<std::string> zalloc_title;
  bool reverse = false;
};

// zalloc as today's kernel runs the VM zones: zalloc_fuzz's target, and the baseline
// a conversion target compares with.
TargetConfig zalloc_target();

// The promise a run's title says the kernel broke ("boot completes", "the pageout
// daemon makes progress", ...), or "" if the title is the allocator's own fault
// (corruption, a double allocation, ...), a finding whatever zalloc did.
std::string broken_promise(const std::string& title);

// The program as the target runs it (pinned fields applied).
Program effective_program(const Program& p, const TargetConfig& t);
RunResult run_program(const Program& p, const HarnessOptions& o);
// Title, program text, interleaving and state, as printed for a crash.
std::string crash_report(const Program& p, const RunResult& r);

}  // namespace slabfuzz

#endif  // SLABFUZZ_FUZZERS_HARNESS_H_
