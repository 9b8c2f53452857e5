// torture_main.cc - the command line of the stress drivers:
//   bazel run //stress:torture -- --scenario=NAME --backend=B --cpus=N --threads=M
//       --duration=S --seed=K [--ops=N] [--watchdog-ms=MS] [--pages=P]
//       [--delay-one-in=N] | --list
// Prints throughput, latency percentiles and reserve statistics, and a last line a
// script can read ("RESULT ... status=ok|fail"). Exit 0 when every invariant held,
// 1 on a violation (its title first), 2 on bad usage.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "allocator/backend/backend.h"
#include "stress/torture.h"

using namespace slabfuzz;

namespace {

bool parse_num(const std::string& v, double* out) {
  char* end = nullptr;
  double d = strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') return false;
  *out = d;
  return true;
}

int usage(const char* msg) {
  if (msg) fprintf(stderr, "torture: %s\n", msg);
  fprintf(stderr,
          "usage: torture --scenario=NAME [--backend=kmalloc_obj] [--cpus=2] [--threads=2]\n"
          "               [--duration=5] [--seed=1] [--ops=0] [--watchdog-ms=10000]\n"
          "               [--pages=16384] [--delay-one-in=512] | --list\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  TortureOptions o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--list") {
      for (const std::string& s : torture_scenarios()) printf("%s\n", s.c_str());
      printf("backends:");
      for (const std::string& b : backend_names()) printf(" %s", b.c_str());
      printf("\n");
      return 0;
    }
    if (a == "-h" || a == "--help") return usage(nullptr), 0;
    size_t eq = a.find('=');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos)
      return usage(("bad argument '" + a + "'").c_str());
    std::string k = a.substr(2, eq - 2), v = a.substr(eq + 1);
    double d = 0;
    if (k == "scenario") o.scenario = v;
    else if (k == "backend") o.backend = v;
    else if (!parse_num(v, &d)) return usage(("--" + k + " takes a number").c_str());
    else if (k == "cpus") o.cpus = static_cast<int>(d);
    else if (k == "threads") o.threads = static_cast<int>(d);
    else if (k == "duration") o.duration_s = d;
    else if (k == "seed") o.seed = static_cast<uint64_t>(d);
    else if (k == "ops") o.max_ops = static_cast<uint64_t>(d);
    else if (k == "watchdog-ms") o.watchdog_ms = static_cast<int>(d);
    else if (k == "pages") o.budget_pages = static_cast<size_t>(d);
    else if (k == "delay-one-in") o.delay_one_in = static_cast<int>(d);
    else return usage(("unknown option --" + k).c_str());
  }
  std::string err = torture_check_options(o);
  if (!err.empty()) return usage(err.c_str());
  TortureResult r = run_torture(o);
  printf("%s", torture_summary(o, r).c_str());
  fflush(stdout);
  if (!r.ok) {
    // The title also goes first on stderr, for scripts that only read that.
    fprintf(stderr, "%s\n", r.title.c_str());
    fflush(stderr);
    _exit(1);  // stuck threads (watchdog) may still run: do not wait for them
  }
  return 0;
}
