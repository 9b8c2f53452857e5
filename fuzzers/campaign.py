#!/usr/bin/env python3
"""campaign.py - run a fuzzing campaign and keep everything it finds.

    fuzzers/campaign.py [--target=NAME] [--engine=libfuzzer|afl] [--duration=SECONDS]
                        [--out=DIR] [--jobs=N] [--define=K=V ...] [--keep-per-title=K]
                        [--quiet]

Builds the target's fuzz binary, seeds the corpus from corpora/NAME/ (text programs are
compiled to binary), fuzzes for --duration seconds (0: until Ctrl-C), prints progress
(executions per second, coverage, corpus size, crashes) every few seconds, and ends with
a summary of the crashes found, deduplicated by their one-line title.

Everything lives in the output folder (default out/fuzz/NAME), which survives the
crash of a target and Ctrl-C:
    corpus/              the grown corpus (binary programs)
    crashes/raw/         every crashing input as the engine wrote it
    crashes/<title>/     one folder per distinct title: the reproducers, their reports,
                         and minimized.txt (the first one minimized, same title)
    summary.txt          the last summary
Exit status: 0 if nothing was found, 1 if a crash was found, 2 on bad usage or a
failed build.
"""
import argparse
import glob
import hashlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dict_beside(binary):
    """The engines' dictionary (//fuzzers:slabfuzz_dict, generated from fuzzers/ops.h),
    built beside the fuzz binary; None if it is not there."""
    path = os.path.join(os.path.dirname(binary), "slabfuzz.dict")
    return path if os.path.isfile(path) and os.path.getsize(path) > 0 else None


# How AFL++ runs slabfuzz's targets (here and in zoo_campaign.py), but for the mutator
# library's path. No trimming: it shrinks every queue entry to the fewest operations
# that keep its coverage, and races need many. Only the structure-aware mutator:
# AFL++'s own havoc stage, which otherwise takes half the executions, shifts the
# fixed-width records under it (SWAP_OUTSIDE_CRIT in the zoo: found in 2 of 3 runs with
# it, 3 of 3 without, session 6).
AFL_ENV = {"AFL_SKIP_CPUFREQ": "1", "AFL_NO_UI": "1",
           "AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES": "1", "AFL_NO_AFFINITY": "1",
           "AFL_DISABLE_TRIM": "1", "AFL_CUSTOM_MUTATOR_ONLY": "1"}
TITLE_RE = re.compile(r"^slabfuzz: [^\n]+", re.M)


def die(msg, code=2):
    print(f"campaign: {msg}", file=sys.stderr)
    sys.exit(code)


def bazel(*args, capture=False):
    cmd = ["bazel", *args]
    if capture:
        return subprocess.run(cmd, cwd=ROOT, check=False, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, check=False)


def build(target, engine, defines):
    config = "--config=" + engine
    flags = [config] + ["--define=" + d for d in defines]
    if defines:  # a variant (the zoo): its own output folder, never the default's
        flags.append("--platform_suffix=%s-variant" % engine)
    targets = [f"//fuzzers:{target}_bin", "//fuzzers:compile", "//fuzzers:slabfuzz_dict"]
    if engine == "afl":
        # afl-fuzz loads the mutator into itself: no sanitizers there.
        r = bazel("build", "--noshow_progress", "//fuzzers:libslabfuzz_afl_mutator.so",
                  capture=True)
        if r.returncode != 0:
            sys.stderr.write(r.stderr[-4000:])
            die("build of the AFL++ mutator failed")
    print(f"campaign: building {' '.join(targets)} ({' '.join(flags)})", flush=True)
    r = bazel("build", "--noshow_progress", *flags, *targets, capture=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-4000:])
        die("build failed")
    info = bazel("info", *flags, "bazel-bin", capture=True)
    if info.returncode != 0:
        die("bazel info failed: " + info.stderr.strip())
    return info.stdout.strip()


def seed_corpus(bin_dir, target, corpus):
    os.makedirs(corpus, exist_ok=True)
    compile_bin = os.path.join(bin_dir, "fuzzers", "compile")
    for path in sorted(glob.glob(os.path.join(ROOT, "corpora", target, "*"))):
        name = os.path.basename(path)
        if name.endswith(".txt"):
            out = os.path.join(corpus, "seed-" + name[:-4])
            r = subprocess.run([compile_bin, path, out], stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                die(f"seed {path}: {r.stderr.strip()}")
        elif os.path.isfile(path):
            shutil.copy(path, corpus)


def slug(title):
    """A crash folder's name: readable, and never the same for two titles (the words cut
    at 64 characters, then a hash of the whole title)."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", title.replace("slabfuzz: ", "")).strip("-")[:64]
    return (s.strip("-") or "untitled") + "-" + hashlib.sha1(title.encode()).hexdigest()[:8]


HANG_SECONDS = 60
HANG_TITLE = f"slabfuzz: hang: the input did not finish in {HANG_SECONDS} s"


def replay(binary, path):
    """Runs one input; returns (title, output). Both engines' binaries run a file given
    as an argument (AFL++'s driver ignores standard input unless told "-")."""
    try:
        r = subprocess.run([binary, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        # libFuzzer's -timeout artifact: a run that never reaches a preemption point
        # again (an allocator loop over a corrupted list, say) hangs its replay too.
        return HANG_TITLE, HANG_TITLE + "\n"
    m = TITLE_RE.search(r.stdout)
    if m:
        return m.group(0), r.stdout
    m = re.search(r"ERROR: AddressSanitizer: ([\w-]+)", r.stdout)
    if m:
        return "asan: " + m.group(1), r.stdout
    m = re.search(r"runtime error: ([^\n]{0,80})", r.stdout)
    if m:
        return "ubsan: " + m.group(1), r.stdout
    return "slabfuzz: target-crash: no slabfuzz title (see report)", r.stdout


KEEP_PER_TITLE = 5


def report_text(title, out):
    """A saved report: the title on line 1, then the target's output from its report on
    (the engine's banner before it dropped)."""
    at = out.find(title)
    return title + "\n" + (out[at + len(title):].lstrip("\n") if at >= 0 else "\n" + out)


def triage(binary, raw_dir, crash_root, keep=KEEP_PER_TITLE):
    """Reproduces every raw crash, files it under its title (at most `keep` inputs a
    title, the rest counted); returns {title: count}."""
    titles = {}
    for path in sorted(glob.glob(os.path.join(raw_dir, "*"))):
        if not os.path.isfile(path) or os.path.basename(path).startswith("README"):
            continue
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue  # gone meanwhile (the folder cleared under a running campaign)
        title, out = replay(binary, path)
        titles[title] = titles.get(title, 0) + 1
        d = os.path.join(crash_root, slug(title))
        os.makedirs(d, exist_ok=True)
        digest = hashlib.sha1(data).hexdigest()[:16]
        dest = os.path.join(d, "input-" + digest)
        kept = sorted(os.path.join(d, f) for f in os.listdir(d)
                      if f.startswith("input-") and not f.endswith(".report.txt"))
        if not os.path.exists(dest) and len(kept) < keep:
            shutil.copy(path, dest)
            with open(dest + ".report.txt", "w") as f:
                f.write(report_text(title, out))
        elif not os.path.exists(dest):
            dest = kept[0]  # the title's folder is full: counted only
        with open(os.path.join(d, "TITLE"), "w") as f:
            f.write(title + "\n")
        minimized = os.path.join(d, "minimized.txt")
        if title != HANG_TITLE and not os.path.exists(minimized):
            minimize(binary, dest, minimized)
    return titles


MINIMIZE_SECONDS = 30


def minimize(binary, crash, out):
    """The first input of a title, minimized (fuzz_target.cc: `BIN --minimize`): the
    smallest program found with the same title, in text form, beside the report."""
    try:
        r = subprocess.run([binary, "--minimize", crash, "--out", out,
                            "--max-seconds", str(MINIMIZE_SECONDS)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           errors="replace", timeout=MINIMIZE_SECONDS + 2 * HANG_SECONDS)
    except subprocess.TimeoutExpired:
        return
    if r.returncode == 0 and r.stderr.strip():
        print("campaign: " + r.stderr.strip().splitlines()[-1], flush=True)


class Progress:
    """Parses libFuzzer's status lines (plain and -fork mode)."""

    def __init__(self):
        self.execs = 0
        self.cov = 0
        self.ft = 0
        self.corpus = 0
        self.crashes = 0

    def feed(self, line):
        m = re.search(r"#(\d+):?\s.*cov: (\d+) ft: (\d+) corp: (\d+)", line)
        if m:
            self.execs, self.cov, self.ft, self.corpus = map(int, m.groups())
        m = re.search(r"oom/timeout/crash: \d+/\d+/(\d+)", line)
        if m:
            self.crashes = max(self.crashes, int(m.group(1)))
        if "ERROR: libFuzzer" in line or "deadly signal" in line:
            self.crashes = max(self.crashes, 1)


def run_libfuzzer(binary, corpus, raw_dir, duration, jobs, dict_path, max_len, quiet, log):
    args = [binary, "-fork=%d" % jobs, "-ignore_crashes=1", "-ignore_timeouts=1",
            "-ignore_ooms=1", "-artifact_prefix=" + raw_dir + "/", "-max_len=%d" % max_len,
            "-timeout=30", "-print_final_stats=1"]
    if duration > 0:
        args.append("-max_total_time=%d" % duration)
    if dict_path:
        args.append("-dict=" + dict_path)
    args.append(corpus)
    return stream(args, quiet, log, env=None)


def run_afl(binary, mutator, corpus, out_dir, duration, max_len, quiet, log):
    env = dict(os.environ, **AFL_ENV, AFL_CUSTOM_MUTATOR_LIBRARY=mutator)
    # Programs as long as libFuzzer's (-G = -max_len).
    args = ["afl-fuzz", "-i", corpus, "-o", out_dir, "-G", str(max_len)]
    if duration > 0:
        args += ["-V", str(duration)]
    args += ["--", binary]

    def poll(progress):
        # AFL++ without its UI prints no status lines: its fuzzer_stats file has them.
        # (AFL++ rewrites the file in place: one caught half-written is skipped.)
        for path in glob.glob(os.path.join(out_dir, "*", "fuzzer_stats")):
            try:
                with open(path) as f:
                    stats = dict(line.split(":", 1) for line in f if ":" in line)
                stats = {k.strip(): v.strip() for k, v in stats.items()}
                execs = int(stats.get("execs_done", progress.execs))
                cov = int(stats.get("edges_found", progress.cov))
                corpus = int(stats.get("corpus_count", progress.corpus))
                crashes = int(stats.get("saved_crashes", 0))
            except (OSError, ValueError):
                continue
            progress.execs, progress.cov, progress.corpus = execs, cov, corpus
            progress.crashes = max(progress.crashes, crashes)

    return stream(args, quiet, log, env=env, poll=poll)


def stream(args, quiet, log, env, poll=None):
    """Runs the engine, logging its output; progress from its status lines, or from
    poll(progress) (an engine that prints none), every 5 seconds."""
    progress = Progress()
    start = time.time()
    last = 0.0
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", env=env, start_new_session=True)
    lines = queue.Queue()

    def reader():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    interrupted = False

    def on_sigint(signum, frame):
        nonlocal interrupted
        interrupted = True
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    old = signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, on_sigint)
    try:
        done = False
        while not done:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                line = ""
            if line is None:
                done = True
            elif line:
                log.write(line)
                progress.feed(line)
            now = time.time()
            if now - last >= 5 or done:
                last = now
                if poll:
                    poll(progress)
                if not quiet and not done:
                    rate = progress.execs / max(now - start, 1e-9)
                    print(f"[{int(now - start):5d}s] execs {progress.execs} "
                          f"({rate:.0f}/s) cov {progress.cov} ft {progress.ft} "
                          f"corpus {progress.corpus} crashes {progress.crashes}", flush=True)
        proc.wait()
    finally:
        signal.signal(signal.SIGINT, old)
    return progress, time.time() - start, interrupted


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="kmalloc_obj_reserved_fuzz")
    ap.add_argument("--engine", default="libfuzzer", choices=["libfuzzer", "afl"])
    ap.add_argument("--duration", default="300",
                    help="seconds to fuzz; 0 runs until stopped (Ctrl-C)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--max-len", type=int, default=16 + 8 * 128)
    ap.add_argument("--define", action="append", default=[],
                    help="Bazel --define, e.g. slabfuzz_bug=RESERVE_OFF_BY_ONE (the zoo)")
    ap.add_argument("--binary", default=None, help="use this fuzz binary; do not build")
    ap.add_argument("--keep-per-title", type=int, default=KEEP_PER_TITLE,
                    help="inputs kept in each crash folder (the rest are counted)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    if not re.fullmatch(r"\d+", a.duration):
        die("--duration takes a whole number of seconds (0: until stopped)")
    duration = int(a.duration)
    if a.jobs < 1:
        die("--jobs must be at least 1")
    if a.keep_per_title < 1:
        die("--keep-per-title must be at least 1")
    if not os.path.isdir(os.path.join(ROOT, "corpora", a.target)) and a.binary is None:
        die(f"no such fuzzer '{a.target}' (see corpora/ and fuzzers/BUILD)")

    out = os.path.abspath(a.out or os.path.join(ROOT, "out", "fuzz", a.target))
    corpus = os.path.join(out, "corpus")
    raw = os.path.join(out, "crashes", "raw")
    os.makedirs(raw, exist_ok=True)

    if a.binary:
        binary = os.path.abspath(a.binary)
        bin_dir = None
    else:
        bin_dir = build(a.target, a.engine, a.define)
        binary = os.path.join(bin_dir, "fuzzers", a.target + "_bin")
    if bin_dir:
        seed_corpus(bin_dir, a.target, corpus)
    os.makedirs(corpus, exist_ok=True)
    if not os.listdir(corpus):
        # An empty corpus is allowed; libFuzzer starts from an empty input.
        pass
    dict_path = dict_beside(binary)

    print(f"campaign: {a.target} with {a.engine} for "
          f"{str(duration) + ' s' if duration else 'ever (Ctrl-C stops)'}; output in {out}",
          flush=True)
    with open(os.path.join(out, "engine.log"), "a") as log:
        if a.engine == "libfuzzer":
            progress, elapsed, interrupted = run_libfuzzer(
                binary, corpus, raw, duration, a.jobs, dict_path, a.max_len, a.quiet, log)
        else:
            seeds = corpus if os.listdir(corpus) else None
            if seeds is None:
                seeds = os.path.join(out, "afl-seed")
                os.makedirs(seeds, exist_ok=True)
                open(os.path.join(seeds, "empty"), "wb").write(b"\0" * 16)
            info = bazel("info", "bazel-bin", capture=True)
            mutator = os.path.join(info.stdout.strip(), "fuzzers", "libslabfuzz_afl_mutator.so")
            progress, elapsed, interrupted = run_afl(
                binary, mutator, seeds, os.path.join(out, "afl"), duration, a.max_len, a.quiet,
                log)
            for p in glob.glob(os.path.join(out, "afl", "*", "crashes", "id:*")):
                shutil.copy(p, os.path.join(raw, os.path.basename(p).replace(":", "_")))

    titles = triage(binary, raw, os.path.join(out, "crashes"), a.keep_per_title)
    lines = [f"target {a.target} engine {a.engine} ran {int(elapsed)} s"
             + (" (interrupted)" if interrupted else ""),
             f"executions {progress.execs} coverage {progress.cov} features {progress.ft} "
             f"corpus {progress.corpus}",
             f"crashes: {sum(titles.values())} inputs, {len(titles)} distinct titles"]
    for t, n in sorted(titles.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {n:4d}  {t}")
    summary = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(summary)
    print("\n" + summary, end="")
    print(f"campaign: reproducers and reports in {os.path.join(out, 'crashes')}")
    sys.exit(1 if titles else 0)


if __name__ == "__main__":
    main()
