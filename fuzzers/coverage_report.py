#!/usr/bin/env python3
"""coverage_report.py - line and branch coverage of the code under test by a corpus.

    fuzzers/coverage_report.py [--target=NAME] [--corpus=DIR] [--out=DIR]

Builds the target's replay binary with clang's source-based coverage
(--config=srccov, an output folder of its own), replays the corpus (default: the
campaign's out/fuzz/NAME/corpus if it exists, else corpora/NAME), merges the profiles
and prints line and branch coverage per allocator and VM file (allocator/, without
the tests), then writes llvm-cov's HTML report to OUT/html (default
out/coverage/NAME). ci/coverage runs it. Exit 2 on bad usage or a failed build.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import campaign  # noqa: E402  (bazel, die)

ROOT = campaign.ROOT


def tool(name):
    for cand in (name + "-14", name):
        path = shutil.which(cand)
        if path:
            return path
    campaign.die(f"{name} not found (Debian's llvm-14 package has it)")


def main():
    ap = campaign.Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="kmalloc_obj_reserved_fuzz")
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if not os.path.isdir(os.path.join(ROOT, "corpora", a.target)):
        campaign.die(f"no such fuzzer '{a.target}' (see corpora/ and fuzzers/BUILD)")
    corpus = a.corpus
    if corpus is None:
        grown = os.path.join(ROOT, "out", "fuzz", a.target, "corpus")
        corpus = grown if os.path.isdir(grown) and os.listdir(grown) else \
            os.path.join(ROOT, "corpora", a.target)
    if not os.path.isdir(corpus):
        campaign.die(f"--corpus {corpus}: not a folder")
    out = os.path.abspath(a.out or os.path.join(ROOT, "out", "coverage", a.target))
    try:
        shutil.rmtree(os.path.join(out, "profiles"), ignore_errors=True)
        os.makedirs(os.path.join(out, "profiles"))
    except OSError as e:
        campaign.die(f"--out {out}: {e.strerror}")

    flags = ["--config=srccov"]
    print(f"coverage: building //fuzzers:{a.target} ({' '.join(flags)})", flush=True)
    r = campaign.bazel("build", "--noshow_progress", *flags, "//fuzzers:" + a.target,
                       capture=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-4000:])
        campaign.die("build failed")
    bin_dir = campaign.bazel("info", *flags, "bazel-bin", capture=True).stdout.strip()
    binary = os.path.join(bin_dir, "fuzzers", a.target)

    files = sorted(p for p in glob.glob(os.path.join(corpus, "*")) if os.path.isfile(p))
    print(f"coverage: replaying {len(files)} inputs of {corpus}", flush=True)
    env = dict(os.environ, LLVM_PROFILE_FILE=os.path.join(out, "profiles", "%p.profraw"))
    crashed = 0
    # In batches, one process each: a crashing input ends its batch's process only
    # after its profile is written (the replay binary exits, it does not abort).
    for i in range(0, len(files), 200):
        r = subprocess.run([binary, *files[i:i + 200]], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        crashed += r.returncode == 1
    raws = glob.glob(os.path.join(out, "profiles", "*.profraw"))
    if not raws:
        campaign.die("no profile was written")
    profdata = os.path.join(out, "coverage.profdata")
    subprocess.run([tool("llvm-profdata"), "merge", "-sparse", *raws, "-o", profdata],
                   check=True)
    # The code under test: the allocators and the VM consumers, not the kernel
    # environment, the backends' glue, the checkers or the tests (paths as the build
    # saw them, relative to the execution root).
    under_test = sorted(
        os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "allocator", "*", "*.cc"))
        if not p.endswith(("_test.cc", "_check.cc")) and "/kenv/" not in p
        and "/backend/" not in p)
    r = subprocess.run([tool("llvm-cov"), "report", binary, "-instr-profile=" + profdata],
                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        campaign.die("llvm-cov report failed: " + r.stderr.strip().splitlines()[-1])
    print_table(r.stdout, under_test)
    html = os.path.join(out, "html")
    shutil.rmtree(html, ignore_errors=True)
    ignore = "|".join(["^/usr/", "_test\\.cc$", "^external/", "^fuzzers/", "allocator/kenv/",
                       "allocator/backend/", "_check\\.cc$"])
    subprocess.run([tool("llvm-cov"), "show", binary, "-instr-profile=" + profdata,
                    "-format=html", "-output-dir=" + html, "-ignore-filename-regex=" + ignore],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    if crashed:
        print(f"coverage: {crashed} replay batches ended on a crashing input")
    print(f"coverage: HTML report in {os.path.join(html, 'index.html')}")


def print_table(report, files):
    """llvm-cov's table, for the given files, as lines and branches covered."""
    print(f"{'file':40s} {'lines':>12s} {'line %':>7s} {'branches':>12s} {'branch %':>8s}")
    total = [0, 0, 0, 0]
    for line in report.splitlines():
        cols = line.split()
        # Filename Regions Missed Cover Functions Missed Cover Lines Missed Cover
        # Branches Missed Cover
        if len(cols) < 13 or cols[0] not in files:
            continue
        lines, lmiss, br, bmiss = int(cols[7]), int(cols[8]), int(cols[10]), int(cols[11])
        row(cols[0], lines - lmiss, lines, br - bmiss, br)
        for i, v in enumerate((lines - lmiss, lines, br - bmiss, br)):
            total[i] += v
    row("total", *total)


def row(name, lcov, lines, bcov, br):
    pct = lambda a, b: f"{100.0 * a / b:.1f}%" if b else "-"  # noqa: E731
    print(f"{name:40s} {f'{lcov}/{lines}':>12s} {pct(lcov, lines):>7s} "
          f"{f'{bcov}/{br}':>12s} {pct(bcov, br):>8s}")


if __name__ == "__main__":
    main()
