// minimize.cc - the title-preserving minimizer (see minimize.h).
#include "fuzzers/minimize.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <regex>
#include <string>

namespace slabfuzz {

namespace {

constexpr char kTitleMark[] = "slabfuzz-minimize-title: ";

// A child's output: its title line if it wrote one, else what campaign.py's replay()
// would call it (fuzzers/campaign.py: the same words, so that a title found by the
// campaign is the title the minimizer keeps).
std::string title_of(const std::string& out, int status, int hang_seconds) {
  size_t m = out.find(kTitleMark);
  if (m != std::string::npos) {
    size_t from = m + strlen(kTitleMark);
    return out.substr(from, out.find('\n', from) - from);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    return "slabfuzz: hang: the input did not finish in " + std::to_string(hang_seconds) + " s";
  std::smatch sm;
  static const std::regex kSlabfuzz("(^|\n)(slabfuzz: [^\n]+)");
  static const std::regex kAsan("ERROR: AddressSanitizer: ([\\w-]+)");
  static const std::regex kUbsan("runtime error: ([^\n]{0,80})");
  if (std::regex_search(out, sm, kSlabfuzz)) return sm[2];
  if (std::regex_search(out, sm, kAsan)) return "asan: " + sm[1].str();
  if (std::regex_search(out, sm, kUbsan)) return "ubsan: " + sm[1].str();
  return "slabfuzz: target-crash: no slabfuzz title (see report)";
}

std::string candidate_title(const Program& p, const HarnessOptions& o,
                            const MinimizeOptions& mo) {
  return mo.title_of ? mo.title_of(p) : run_title(p, o, mo.hang_seconds);
}

class Minimizer {
 public:
  Minimizer(const HarnessOptions& o, const MinimizeOptions& mo, MinimizeResult* res)
      : o_(o), mo_(mo), res_(res), start_(std::chrono::steady_clock::now()) {}

  // Removal, then simplification and removal again until a simplification changes
  // nothing: every kept step lowers a field or sets it to its plain value, so this ends.
  void run() {
    remove_ops(res_->program.ops.size() / 2);
    while (!res_->timed_out && (simplify() | remove_retimed()))
      remove_ops(std::max<size_t>(1, res_->program.ops.size() / 4));
  }

 private:
  // Runs the candidate; keeps it as the current program if it ends with the title.
  bool keeps(Program cand) {
    cand = effective_program(cand, o_.target);
    if (cand == res_->program) return false;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() >
        mo_.max_seconds) {
      res_->timed_out = true;
      return false;
    }
    res_->runs++;
    if (candidate_title(cand, o_, mo_) != res_->title) return false;
    res_->program = std::move(cand);
    return true;
  }

  // Removes chunks of operations, from `chunk` operations down to one, from the end
  // (later operations depend on earlier ones more often than the reverse).
  bool remove_ops(size_t chunk) {
    bool changed = false;
    Program& cur = res_->program;
    for (chunk = std::max<size_t>(1, chunk);; chunk /= 2) {
      for (size_t end = cur.ops.size(); end > 0 && !res_->timed_out;) {
        size_t begin = end > chunk ? end - chunk : 0;
        Program cand = cur;
        erase_ops(&cand, begin, end - begin);  // references follow their operations
        changed |= keeps(std::move(cand));
        end = std::min(begin, cur.ops.size());
      }
      if (chunk <= 1) break;
    }
    return changed;
  }

  // Removes one operation with the schedule moved along: every operation passes one
  // preemption point of its CPU (Exec::cpu_stream), so a timer or directed preemption
  // counted in that CPU's points and posted before it is made due one point sooner,
  // and still falls where it fell among the operations that remain. A race's program
  // needs this step: its interleaving is counted in points, and an operation that does
  // nothing else (a free of nothing, pressure of no pages) is still a tick of that
  // clock, which plain removal cannot take out. Two guesses per operation: every such
  // schedule operation before it moved, or only the nearest (an earlier one may have
  // fired already). Each change lowers a field and removes an operation: this ends.
  bool remove_retimed() {
    bool changed = false;
    Program& cur = res_->program;
    for (size_t j = cur.ops.size(); j-- > 0 && !res_->timed_out;) {
      if (j >= cur.ops.size() || is_schedule_op(cur.ops[j])) continue;
      int moved_all = 0;
      for (bool nearest_only : {false, true}) {
        Program cand = cur;
        int moved = 0;
        for (size_t s = j; s-- > 0;) {
          Op& op = cand.ops[s];
          bool counts_here = (op.code == OpCode::kTimer && op.a == cand.ops[j].cpu) ||
                             (op.code == OpCode::kPreempt && op.cpu == cand.ops[j].cpu);
          if (!counts_here || op.b == 0) continue;
          op.b--;
          moved++;
          if (nearest_only) break;
        }
        if (!nearest_only) moved_all = moved;
        if (moved == 0 || (nearest_only && moved_all == 1)) break;  // nothing new to try
        erase_ops(&cand, j, 1);
        if (keeps(std::move(cand))) {
          changed = true;
          break;
        }
      }
    }
    return changed;
  }

  bool try_header(const std::function<void(Header&)>& f) {
    Program cand = res_->program;
    f(cand.header);
    return keeps(std::move(cand));
  }

  bool try_op(size_t i, const std::function<void(Op&)>& f) {
    Program cand = res_->program;
    f(cand.ops[i]);
    return keeps(std::move(cand));
  }

  // The lowest value of a header field in [lo, now) that keeps the title.
  bool lower(uint8_t Header::*field, int lo) {
    int now = res_->program.header.*field;
    for (int v = lo; v < now; v++)
      if (try_header([&](Header& h) { h.*field = static_cast<uint8_t>(v); })) return true;
    return false;
  }

  // Fields and header, simplest first; each change kept only with the same title.
  bool simplify() {
    const Header plain;
    bool changed = false;
    changed |= try_header([](Header& h) { h.races = 0; });
    changed |= try_header([](Header& h) { h.tick = 0; });
    changed |= lower(&Header::pct_depth, 1);
    changed |= lower(&Header::ncpus, 1);
    changed |= lower(&Header::nzones, 1);
    changed |= try_header([&](Header& h) { h.zone_sizes = plain.zone_sizes; });
    changed |= try_header([](Header& h) { h.boot = BootMode::kRunning; });
    changed |= lower(&Header::boot_slabs, 0);
    changed |= lower(&Header::reserve, 0);
    changed |= try_header([&](Header& h) { h.budget = plain.budget; });
    changed |= try_header([](Header& h) { h.seed = 0; });
    for (size_t i = res_->program.ops.size(); i-- > 0 && !res_->timed_out;) {
      changed |= try_op(i, [](Op& op) { op.cpu = 0; });
      changed |= try_op(i, [](Op& op) { op.a = 0; });
      if (!try_op(i, [](Op& op) { op.b = 0; }))
        changed |= try_op(i, [](Op& op) { op.b = static_cast<uint8_t>(op.b / 2); });
      else
        changed = true;
      if (!try_op(i, [](Op& op) { op.c = 0; }))
        changed |= try_op(i, [](Op& op) { op.c /= 2; });
      else
        changed = true;
    }
    return changed;
  }

  const HarnessOptions& o_;
  const MinimizeOptions& mo_;
  MinimizeResult* res_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

std::string run_title(const Program& p, const HarnessOptions& o, int hang_seconds) {
  int fds[2];
  if (pipe(fds) != 0) {
    perror("minimize: pipe");
    exit(2);
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("minimize: fork");
    exit(2);
  }
  if (pid == 0) {
    close(fds[0]);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(fds[1], 2);  // sanitizer reports
    alarm(static_cast<unsigned>(hang_seconds));
    RunResult r = run_program(p, o);
    std::string line = r.ok ? std::string("\n") : kTitleMark + r.title + "\n";
    if (write(fds[1], line.data(), line.size()) < 0) _exit(3);
    _exit(0);  // no exit handlers: the child's leaks are the parent's objects
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return title_of(out, status, hang_seconds);
}

MinimizeResult minimize(const Program& p, const HarnessOptions& o, const MinimizeOptions& mo) {
  MinimizeResult res;
  res.program = effective_program(p, o.target);
  res.ops_before = res.program.ops.size();
  res.title = candidate_title(res.program, o, mo);
  res.runs = 1;
  res.crashed = !res.title.empty();
  if (res.crashed) Minimizer(o, mo, &res).run();
  return res;
}

bool wants_minimize(int argc, char** argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--minimize") == 0 || strncmp(argv[i], "--minimize=", 11) == 0)
      return true;
  return false;
}

int minimize_main(int argc, char** argv, const TargetConfig& target) {
  std::string crash, out_path;
  MinimizeOptions mo;
  auto usage = [&](const std::string& why) {
    fprintf(stderr, "minimize: %s (usage: %s --minimize CRASH [--out FILE] [--max-seconds S])\n",
            why.c_str(), argv[0]);
    return 2;
  };
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&](const char* name, std::string* v) {
      std::string n = name;
      if (a == n && i + 1 < argc) {
        *v = argv[++i];
        return true;
      }
      if (a.rfind(n + "=", 0) == 0) {
        *v = a.substr(n.size() + 1);
        return true;
      }
      return false;
    };
    std::string v;
    if (value("--minimize", &crash)) continue;
    if (value("--out", &out_path)) continue;
    if (value("--max-seconds", &v)) {
      char* end = nullptr;
      mo.max_seconds = strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || mo.max_seconds <= 0)
        return usage("--max-seconds takes a positive number of seconds, not '" + v + "'");
      continue;
    }
    return usage("unknown argument '" + a + "'");
  }
  if (crash.empty()) return usage("no crash file");
  Program p;
  std::string err;
  if (!load_program(crash, &p, &err)) {
    fprintf(stderr, "minimize: %s\n", err.c_str());
    return 2;
  }
  HarnessOptions o;
  o.target = target;
  auto t0 = std::chrono::steady_clock::now();
  MinimizeResult r = minimize(p, o, mo);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.crashed) {
    fprintf(stderr, "minimize: %s runs clean: nothing to minimize\n", crash.c_str());
    return 1;
  }
  std::string text = "# " + r.title + "\n" + to_text(r.program);
  if (out_path.empty()) {
    fputs(text.c_str(), stdout);
  } else if (!write_atomically(out_path, text, &err)) {
    fprintf(stderr, "minimize: %s\n", err.c_str());
    return 2;
  }
  fprintf(stderr, "minimize: %zu -> %zu operations in %d runs, %.1f s%s: %s\n", r.ops_before,
          r.program.ops.size(), r.runs, s,
          r.timed_out ? " (stopped at the time limit)" : "", r.title.c_str());
  return 0;
}

}  // namespace slabfuzz
