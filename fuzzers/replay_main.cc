// replay_main.cc - runs programs without a fuzzing engine: the replay test of a
// fuzzer's corpus, and the way to reproduce or read a crash in any configuration.
//
//   replay [--print] [--expect-crash=TITLE] [--twice] FILE_OR_DIR...
//                                     --twice: then every program again, in reverse
//                                     order, and each must run exactly as the first
//                                     time (what ran before it in the process must
//                                     not matter: ending, steps, shared accesses)
//   replay --minimize CRASH [--out FILE] [--max-seconds S]
//                                     the smallest program with CRASH's title (minimize.h)
//   replay --random=N [--seed=S]      N random byte strings (up to 64 operations)
//   replay --bench=N [--seed=S] [--bench-ops=K]
//                                     throughput: N structured random programs of up to
//                                     K (64) operations (as the mutator makes them), timed;
//                                     --bench-ops=0 times a run's fixed cost (boot, teardown)
//                                     --bench-no-clock: the same programs without the clock
//                                     prints exec/s (wall clock and CPU time) and a
//                                     fingerprint of the interleavings run
//
// A file is a program in binary form, or in text form if it ends in ".txt". Exit 0
// when every program ran clean (or, with --expect-crash, each ended with that title);
// 1 on a crash (its report is printed, title first); 2 on bad usage or unreadable input.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "fuzzers/harness.h"
#include "fuzzers/minimize.h"
#include "fuzzers/mutator.h"
#include "fuzzers/target.h"

using namespace slabfuzz;

namespace {

void collect(const std::string& path, std::vector<std::string>* files) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    files->push_back(path);  // reported as unreadable
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    files->push_back(path);
    return;
  }
  DIR* d = opendir(path.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') names.push_back(path + "/" + e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) collect(n, files);
}

}  // namespace

int main(int argc, char** argv) {
  if (wants_minimize(argc, argv)) return minimize_main(argc, argv, target_config());
  bool print = false;
  bool twice = false;
  std::string expect;
  long random_n = 0;
  long bench_n = 0;
  long bench_ops = 64;
  bool bench_no_clock = false;
  unsigned long long random_seed = 1;
  std::vector<std::string> files;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--print") print = true;
    else if (a == "--twice") twice = true;
    else if (a.rfind("--expect-crash=", 0) == 0) expect = a.substr(15);
    else if (a.rfind("--random=", 0) == 0) random_n = atol(a.c_str() + 9);
    else if (a.rfind("--bench=", 0) == 0) bench_n = atol(a.c_str() + 8);
    else if (a.rfind("--bench-ops=", 0) == 0) bench_ops = atol(a.c_str() + 12);
    else if (a == "--bench-no-clock") bench_no_clock = true;
    else if (a.rfind("--seed=", 0) == 0) random_seed = strtoull(a.c_str() + 7, nullptr, 0);
    else if (a == "-h" || a == "--help") {
      printf("usage: %s [--print] [--expect-crash=TITLE] [--twice] FILE_OR_DIR...\n", argv[0]);
      return 0;
    } else if (a.rfind("--", 0) == 0) {
      fprintf(stderr, "replay: unknown option %s\n", a.c_str());
      return 2;
    } else collect(a, &files);
  }
  if (bench_n > 0) {
    // Executions per second of the harness alone, on the programs a fuzzer runs: the
    // same programs every time for a seed (generated before the clock starts).
    HarnessOptions o;
    o.target = target_config();
    Rng rng(random_seed);
    std::vector<std::vector<uint8_t>> inputs;
    for (long i = 0; i < bench_n; i++) {
      Program p = random_program(rng, static_cast<size_t>(std::max(1L, bench_ops)));
      if (bench_ops <= 0) p.ops.clear();
      if (bench_no_clock) p.header.tick = 0;
      inputs.push_back(encode(p));
    }
    long failed = 0;
    uint64_t steps = 0, accesses = 0, alias = 0;
    // The runs' preemption-point counts, folded: two builds that print the same value
    // ran the same interleavings (a change meant to be only faster must keep it).
    uint64_t fingerprint = 0;
    // CPU time too: on a shared machine the wall clock counts other processes' turns.
    auto cpu_now = [] {
      timespec ts;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
    };
    // One run first, untimed: the process's one-time costs (the page source maps its
    // arena and ASan poisons its shadow, 32 MiB) are not an execution's.
    run_program(decode(inputs.front()), o);
    double c0 = cpu_now();
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& bytes : inputs) {
      RunResult r = run_program(decode(bytes), o);
      failed += !r.ok;
      steps += r.steps;
      accesses += r.accesses;
      alias += r.alias_pairs;
      fingerprint = fingerprint * 0x100000001b3ULL + r.steps;
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = cpu_now() - c0;
    printf("bench: %ld programs (up to %ld operations) on %s in %.2f s: %.0f exec/s, "
           "%.0f per CPU-second (%ld ended in a finding; %.0f preemption points, %.0f shared "
           "accesses and %.0f alias pairs a run; interleavings %016llx)\n",
           bench_n, bench_ops, target_name(), s, static_cast<double>(bench_n) / s,
           static_cast<double>(bench_n) / cpu, failed,
           static_cast<double>(steps) / static_cast<double>(bench_n),
           static_cast<double>(accesses) / static_cast<double>(bench_n),
           static_cast<double>(alias) / static_cast<double>(bench_n),
           static_cast<unsigned long long>(fingerprint));
    return 0;
  }
  if (random_n > 0) {
    // Random byte strings straight into the harness: none may crash it or report a
    // finding on the correct allocator.
    HarnessOptions o;
    o.target = target_config();
    Rng rng(random_seed);
    for (long i = 0; i < random_n; i++) {
      std::vector<uint8_t> bytes(rng.below(kHeaderSize + kRecordSize * 64 + 1));
      for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng.next());
      Program p = decode(bytes);
      RunResult r = run_program(p, o);
      if (!r.ok) {
        fprintf(stderr, "%s\n(random input %ld of seed %llu)\n",
                crash_report(effective_program(p, o.target), r).c_str(), i, random_seed);
        return 1;
      }
    }
    printf("replay: %ld random programs on %s: %ld passed, 0 failed\n", random_n, target_name(),
           random_n);
    return 0;
  }
  if (files.empty()) {
    fprintf(stderr, "replay: no input (usage: replay [--print] FILE_OR_DIR...)\n");
    return 2;
  }
  HarnessOptions o;
  o.target = target_config();
  int ran = 0;
  // What each run was, for --twice: its ending, steps and shared accesses.
  auto summary = [](const RunResult& r) {
    return (r.ok ? std::string("ok") : r.title) + ", " + std::to_string(r.steps) + " steps, " +
           std::to_string(r.accesses) + " shared accesses, " + std::to_string(r.alias_pairs) +
           " alias pairs";
  };
  std::vector<std::string> first;
  for (const std::string& f : files) {
    Program p;
    std::string err;
    if (!load_program(f, &p, &err)) {
      fprintf(stderr, "replay: %s\n", err.c_str());
      return 2;
    }
    if (print) printf("# %s\n%s", f.c_str(), to_text(effective_program(p, o.target)).c_str());
    RunResult r = run_program(p, o);
    if (twice) first.push_back(summary(r));
    ran++;
    if (!expect.empty()) {
      if (r.ok || r.title != expect) {
        fprintf(stderr, "replay: %s: expected '%s', got '%s'\n", f.c_str(), expect.c_str(),
                r.ok ? "no crash" : r.title.c_str());
        return 1;
      }
      continue;
    }
    if (!r.ok) {
      o.trace = true;
      RunResult again = run_program(p, o);
      fprintf(stderr, "%s\n(input: %s)\n", crash_report(effective_program(p, o.target), again).c_str(),
              f.c_str());
      return 1;
    }
  }
  if (twice) {
    for (size_t i = files.size(); i-- > 0;) {
      Program p;
      std::string err;
      if (!load_program(files[i], &p, &err)) {
        fprintf(stderr, "replay: %s\n", err.c_str());
        return 2;
      }
      std::string again = summary(run_program(p, o));
      if (again != first[i]) {
        fprintf(stderr,
                "replay: %s ran differently after other programs of the process\n"
                "  first:  %s\n  again:  %s\n",
                files[i].c_str(), first[i].c_str(), again.c_str());
        return 1;
      }
    }
  }
  printf("replay: %d programs on %s: %d passed, 0 failed%s\n", ran, target_name(), ran,
         twice ? ", each the same run again in reverse order" : "");
  return 0;
}
