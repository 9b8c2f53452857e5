#!/usr/bin/env python3
"""zoo_campaign.py - measure the fuzzers on the bug zoo.

    fuzzers/zoo_campaign.py [--bugs=A,B,...] [--engines=custom,plain,afl] [--runs=3]
                            [--timeout=600] [--first-seed=1] [--jobs=1] [--out=out/zoo]
                            [--target=kmalloc_obj_reserved_fuzz]

For every zoo bug (fuzzers/zoo.bzl) it builds the default fuzz target with that one
bug compiled in (--define=slabfuzz_bug=NAME), fuzzes it from an empty corpus with each
engine:
    custom  libFuzzer with slabfuzz's structure-aware mutator and crossover
    plain   libFuzzer with its own byte-level mutations only
    afl     AFL++ (persistent mode) with the same custom mutator library, alone
(libFuzzer with the dictionary, //fuzzers:slabfuzz_dict, as ci/fuzz runs it), and records the time to
the first crash and its title, reproduced ten times (a title that changes is reported
as not reproducible; a replay that hangs, once). --jobs=N runs N measurements at a
time (one core each). Runs use seeds 1..runs (or from
--first-seed on), so a measurement can be repeated, or extended with other seeds. The
table (median over the runs) is printed and written to OUT/zoo.txt. Exit 1 if some bug
was not found within the timeout.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import campaign  # ci/fuzz's campaign (this directory): how each engine is run

ROOT = campaign.ROOT
TARGET = "kmalloc_obj_reserved_fuzz"


zoo_bugs = campaign.zoo_bugs


def bazel_out(config, bug, targets, extra=()):
    # Zoo builds get output folders of their own: a bug build must never sit where
    # the correct fuzz binary of the same configuration is expected.
    flags = (["--config=" + config] if config else []) + [
        "--define=slabfuzz_bug=" + bug, "--platform_suffix=%s-zoo" % (config or "default")
    ] + list(extra)
    r = subprocess.run(["bazel", "build", "--noshow_progress", *flags, *targets], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-3000:])
        sys.exit(f"zoo: build of {bug} ({config}) failed")
    info = subprocess.run(["bazel", "info", *flags, "bazel-bin"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return info.stdout.strip()


def build(bug, engines, dest, extra=(), target=TARGET):
    """Copies the bug's binaries (of the fuzz target `target`) to dest; returns
    {engine: path}. extra: further Bazel flags for every build (the gate's --define)."""
    os.makedirs(dest, exist_ok=True)
    out = {}
    if "custom" in engines or "plain" in engines:
        b = bazel_out("libfuzzer", bug, [f"//fuzzers:{target}_bin",
                                         f"//fuzzers:{target}_plain_bin",
                                         "//fuzzers:slabfuzz_dict"], extra)
        shutil.copy(os.path.join(b, "fuzzers", "slabfuzz.dict"), dest)
        for eng, name in (("custom", target + "_bin"), ("plain", target + "_plain_bin")):
            if eng in engines:
                p = os.path.join(dest, eng)
                shutil.copy(os.path.join(b, "fuzzers", name), p)
                out[eng] = p
    if "afl" in engines:
        b = bazel_out("afl", bug, [f"//fuzzers:{target}_bin"], extra)
        p = os.path.join(dest, "afl")
        shutil.copy(os.path.join(b, "fuzzers", target + "_bin"), p)
        # The mutator runs inside afl-fuzz, which has no sanitizer runtime.
        m = bazel_out(None, bug, ["//fuzzers:libslabfuzz_afl_mutator.so"], extra)
        shutil.copy(os.path.join(m, "fuzzers", "libslabfuzz_afl_mutator.so"),
                    os.path.join(dest, "libslabfuzz_afl_mutator.so"))
        out["afl"] = p
    return out


def run_one(binary, engine, seed, timeout, work):
    """Fuzzes from an empty corpus until the first crash; returns (seconds, title)."""
    corpus = os.path.join(work, "corpus")
    crashes = os.path.join(work, "crashes")
    os.makedirs(corpus)
    os.makedirs(crashes)
    start = time.time()
    if engine in ("custom", "plain"):
        # With the dictionary, as ci/fuzz runs libFuzzer (fuzzers/campaign.py).
        cmd = [binary, f"-seed={seed}", f"-max_total_time={timeout}", "-max_len=528",
               "-dict=" + campaign.dict_beside(binary), "-artifact_prefix=" + crashes + "/", "-timeout=30",
               corpus]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=timeout + 120)
        found = sorted(os.listdir(crashes))
        elapsed = time.time() - start
        if not found:
            return None, None
        return elapsed, stable_title(binary, os.path.join(crashes, found[0]))
    seeds = os.path.join(work, "seeds")
    os.makedirs(seeds)
    seed_file = os.path.join(seeds, "empty")
    open(seed_file, "wb").write(b"\0" * 16)
    # afl-fuzz refuses a seed that crashes: then the bug is found by the seed itself.
    probe = subprocess.run([binary, seed_file], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
    if probe.returncode != 0:
        return time.time() - start, stable_title(binary, seed_file)
    env = dict(os.environ, **campaign.AFL_ENV, AFL_BENCH_UNTIL_CRASH="1",
               AFL_CUSTOM_MUTATOR_LIBRARY=os.path.join(os.path.dirname(binary),
                                                       "libslabfuzz_afl_mutator.so"))
    out = os.path.join(work, "afl")
    # As libFuzzer's runs: programs of at most 64 operations (-G 528); the rest of the
    # settings are ci/fuzz's (campaign.AFL_ENV, and why).
    subprocess.run(["afl-fuzz", "-s", str(seed), "-i", seeds, "-o", out, "-V", str(timeout),
                    "-G", "528", "--", binary], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=timeout + 120)
    elapsed = time.time() - start
    found = []
    for d, _, files in os.walk(out):
        if os.path.basename(d) == "crashes":
            found += [os.path.join(d, f) for f in sorted(files) if f.startswith("id:")]
    if not found:
        return None, None
    return elapsed, stable_title(binary, found[0])


def stable_title(binary, crash, times=10):
    """The crash's title, reproduced `times` times; marked if it ever differs."""
    first = campaign.replay(binary, crash)[0]
    if first == campaign.HANG_TITLE:
        return first  # one replay of a hang is enough (and takes HANG_SECONDS)
    titles = {first} | {campaign.replay(binary, crash)[0] for _ in range(times - 1)}
    if len(titles) == 1:
        return titles.pop()
    return "NOT REPRODUCIBLE: " + " | ".join(sorted(titles))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bugs", default=",".join(zoo_bugs()))
    ap.add_argument("--target", default=TARGET,
                    help="the fuzz target the bugs are compiled into (conversion_fuzz: "
                         "which zoo bugs the conversion proof finds)")
    ap.add_argument("--engines", default="custom,plain,afl")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "zoo"))
    a = ap.parse_args()
    bugs = [b for b in a.bugs.split(",") if b]
    unknown = set(bugs) - set(zoo_bugs())
    if unknown:
        sys.exit(f"zoo: unknown bugs {sorted(unknown)}; known: {zoo_bugs()}")
    engines = a.engines.split(",")
    if a.jobs < 1:
        sys.exit("zoo: --jobs must be at least 1")
    os.makedirs(a.out, exist_ok=True)
    rows = []
    missed = False
    # Every variant is built (and copied) before any fuzzing starts: a build of
    # another variant then cannot replace a binary under a running measurement.
    if not os.path.isdir(os.path.join(ROOT, "corpora", a.target)):
        sys.exit(f"zoo: no such fuzz target '{a.target}' (see corpora/ and fuzzers/BUILD)")
    all_bins = {bug: build(bug, engines, os.path.join(a.out, "bin", bug), target=a.target)
                for bug in bugs}
    # One measurement per (bug, engine, seed); with --jobs=N, N at a time (each
    # engine process is single-threaded: give each job a core of its own).
    tasks = [(bug, eng, seed) for bug in bugs for eng in engines
             for seed in range(a.first_seed, a.first_seed + a.runs)]
    results = {}

    def measure(task):
        bug, eng, seed = task
        with tempfile.TemporaryDirectory(dir=a.out) as work:
            t, title = run_one(all_bins[bug][eng], eng, seed, a.timeout, work)
            keep = os.path.join(a.out, "crashes", f"{bug}-{eng}-{seed}")
            for d, _, files in os.walk(work):  # keep the first crash of the run
                if os.path.basename(d) == "crashes" and files:
                    os.makedirs(keep, exist_ok=True)
                    first = sorted(f for f in files if not f.startswith("README"))[:1]
                    for f in first:
                        shutil.copy(os.path.join(d, f), keep)
        print(f"zoo: {bug:24s} {eng:6s} run {seed}: "
              f"{'%.1f s' % t if t is not None else 'not found'}  {title or ''}", flush=True)
        return t, title

    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for task, res in zip(tasks, pool.map(measure, tasks)):
            results[task] = res
    for bug in bugs:
        for eng in engines:
            runs = [results[(bug, eng, seed)]
                    for seed in range(a.first_seed, a.first_seed + a.runs)]
            times = [t for t, _ in runs]
            titles = [title for _, title in runs]
            found = [t for t in times if t is not None]
            if len(found) < len(times):
                missed = True
            # A run that found nothing counts as infinitely long: the median is a time
            # when more than half the runs found the bug, and "> timeout" otherwise.
            med = statistics.median_low(
                [t if t is not None else float("inf") for t in times])
            if med == float("inf"):
                med = None
            rows.append((bug, eng, med, len(found), len(times),
                         max(set(t for t in titles if t), key=titles.count) if found else "-"))
    lines = [f"{'bug':24s} {'engine':6s} {'median':>9s} {'found':>6s}  title"]
    for bug, eng, med, nf, n, title in rows:
        lines.append(f"{bug:24s} {eng:6s} {('%.1f s' % med) if med is not None else '>' + str(a.timeout) + ' s':>9s} "
                     f"{nf}/{n:<4d}  {title}")
    table = "\n".join(lines) + "\n"
    open(os.path.join(a.out, "zoo.txt"), "w").write(table)
    print("\n" + table, end="")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
