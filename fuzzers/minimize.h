// minimize.h - a title-preserving minimizer of crashing programs.
//
// Given a program whose run ends in a finding with title T, minimize() looks for a
// smaller program whose run ends with exactly T: it removes operations (chunks of
// halving size, then one at a time, as delta debugging and syzkaller's
// prog/minimization do), then simplifies fields and the header (fewer CPUs, no clock,
// no change points at accesses, a lower depth, smaller counts, the default zone
// sizes), removes operations with the schedule moved along (a timer or directed
// preemption due one preemption point sooner for each operation of its CPU taken
// out: a race's program is counted in points), and repeats until nothing changes.
// A step is kept only if the replay gives the same title, never a different one, so
// the minimized program shows the same bug.
//
// Invariants:
//  - deterministic: runs are deterministic, candidates are tried in a fixed order, and
//    the result depends only on the input and the target (unless the time limit cut
//    it short, which the result says);
//  - every candidate runs in a child process: an ASan report, a fatal signal or a hang
//    of one candidate (titled as campaign.py titles them) cannot end the minimization,
//    and no run leaves state behind in the minimizer's process;
//  - the result is canonical (effective_program of the target), so that it prints and
//    replays as it ran.
#ifndef SLABFUZZ_FUZZERS_MINIMIZE_H_
#define SLABFUZZ_FUZZERS_MINIMIZE_H_

#include <functional>
#include <string>

#include "fuzzers/harness.h"
#include "fuzzers/program.h"

namespace slabfuzz {

struct MinimizeOptions {
  double max_seconds = 60;  // then the smallest program found so far
  int hang_seconds = 30;    // a candidate that runs longer is titled a hang
  // Tests of the search itself: the title a candidate would end with, in place of
  // running it (empty: it runs, in a child, as run_title() does).
  std::function<std::string(const Program&)> title_of;
};

struct MinimizeResult {
  bool crashed = false;    // false: the input does not end in a finding
  std::string title;       // the input's (and the result's) title
  Program program;         // the smallest program found with that title
  size_t ops_before = 0;
  int runs = 0;            // candidates run
  bool timed_out = false;  // the time limit stopped it before a fixed point
};

// The title of one run of p (run in a child process); empty if it ran clean.
std::string run_title(const Program& p, const HarnessOptions& o, int hang_seconds);

MinimizeResult minimize(const Program& p, const HarnessOptions& o, const MinimizeOptions& mo);

// The `--minimize CRASH [--out FILE] [--max-seconds S]` command of the fuzz and
// replay binaries: argv holds those arguments (argv[0] names the tool). Prints the
// minimized program (to FILE, written atomically, or to standard output) and a line
// on standard error; returns the exit code: 0 minimized, 1 the input does not crash,
// 2 bad usage or I/O.
int minimize_main(int argc, char** argv, const TargetConfig& target);

// Whether argv holds --minimize (the fuzz binary hands such a command to
// minimize_main instead of the engine).
bool wants_minimize(int argc, char** argv);

}  // namespace slabfuzz

#endif  // SLABFUZZ_FUZZERS_MINIMIZE_H_
