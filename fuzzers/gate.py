#!/usr/bin/env python3
"""gate.py - the merge gate (ci/gate): does this change break the allocator, or make
the fuzzers blind?

    ci/gate [--smoke] [--minutes=N] [--stress-seconds=S] [--no-test] [--no-stress]
            [--no-power] [--no-oss-fuzz] [--no-fuzz] [--define=K=V ...] [--out=DIR]

Steps, in order; the first that fails ends the gate:
  test    ci/test, the unit tests in all three configurations (--no-test and --smoke
          skip it: .ci/run has just run it)
  stress  every torture scenario (stress/torture.cc) on the threaded runtime under
          TSan and under ASan, --stress-seconds each (60; --smoke 5): real threads, for
          longer than the unit tests run them
  power   the zoo power check: every zoo bug whose median time to find in the README's
          zoo table (libFuzzer + custom mutator) is under 5 s must be found again by
          libFuzzer with the custom mutator within 60 s, from an empty corpus
          (fuzzers/zoo_campaign.py's measurement); a bug not found names a change
          that made the fuzzers blind
  oss-fuzz  ci/oss-fuzz-check: .clusterfuzzlite/build.sh under OSS-Fuzz's build.sh
          contract, then 1,000 runs of every packaged fuzzer on its seed corpus
  fuzz    the default target for --minutes (10, as ClusterFuzzLite's code-change
          fuzzing; --smoke 1) with ci/fuzz's campaign, stopping at the first crash.
          A title pinned in corpora/ (an `# expect:` line of corpora/regressions/) is
          reported and does not fail the gate; any other fails it, with its minimized
          reproducer printed
--define=K=V is passed to the stress and fuzz builds (`--define=slabfuzz_bug=NAME`
puts a zoo bug into the default target; `--define=slabfuzz_custom_mutator=off` builds
every fuzz binary, the power check's too, without the custom mutator).

The last line is the gate's summary ("gate: PASS ..." or "gate: FAIL <step>: ...").
Exit 0 pass; 1 a new crash, lost power or a stress or test failure; 2 the gate could
not run (bad usage, a failed build). Everything is kept in --out (out/gate): each
step's log, the power check's table, the campaign's output folder.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

import campaign
import zoo_campaign

ROOT = campaign.ROOT
TARGET = "kmalloc_obj_reserved_fuzz"
POWER_MEDIAN = 5.0    # README medians under this must hold
POWER_SECONDS = 60    # the time each of them is given
SCENARIOS_CMD = ["bazel", "run", "--noshow_progress", "//stress:torture", "--", "--list"]


class GateError(Exception):
    """The gate itself could not run (exit 2)."""


def log_path(out, name):
    return os.path.join(out, name + ".log")


def run_logged(cmd, log, timeout=None, env=None):
    with open(log, "w") as f:
        try:
            return subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                  timeout=timeout, env=env).returncode
        except subprocess.TimeoutExpired:
            return None


def readme_fast_bugs(readme=os.path.join(ROOT, "README.md")):
    """The zoo bugs whose README median (first column: libFuzzer + custom mutator) is
    under POWER_MEDIAN seconds, with that median."""
    bugs = {}
    known = set(campaign.zoo_bugs())
    with open(readme) as f:
        for line in f:
            m = re.match(r"\|\s*([A-Z_]+)\s*\|\s*([0-9.]+)\b", line)
            if m and m.group(1) in known:
                median = float(m.group(2))
                if median < POWER_MEDIAN:
                    bugs[m.group(1)] = median
    if not bugs:
        raise GateError("README.md has no zoo table the power check can read")
    return bugs


def pinned_titles():
    """Titles corpora/ pins: the `# expect:` lines of crashing regressions."""
    titles = set()
    for path in glob.glob(os.path.join(ROOT, "corpora", "**", "*.txt"), recursive=True):
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"#\s*expect:\s*(.+?)\s*$", line)
                if m and m.group(1) != "ok":
                    titles.add(m.group(1))
    return titles


def step_test(a, out):
    rc = run_logged([os.path.join(ROOT, "ci", "test")], log_path(out, "test"))
    if rc != 0:
        with open(log_path(out, "test")) as f:
            last = [l for l in f.read().splitlines() if l.strip()][-1:]
        return f"ci/test failed ({last[0] if last else 'no output'})"
    return None


def step_stress(a, out):
    r = subprocess.run(SCENARIOS_CMD, cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise GateError("cannot build //stress:torture: " + r.stderr.strip()[-300:])
    scenarios = [l for l in r.stdout.splitlines() if l and not l.startswith("backends:")]
    for config in ("tsan", "asan"):
        # Built once per configuration, then run as a plain binary.
        flags = ["--config=" + config] + ["--define=" + d for d in a.define]
        b = subprocess.run(["bazel", "build", "--noshow_progress", *flags, "//stress:torture"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if b.returncode != 0:
            raise GateError(f"cannot build //stress:torture under {config}: "
                            + b.stdout.strip()[-300:])
        info = subprocess.run(["bazel", "info", *flags, "bazel-bin"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        binary = os.path.join(info.stdout.strip(), "stress", "torture")
        for s in scenarios:
            log = log_path(out, f"stress-{config}-{s}")
            rc = run_logged([binary, "--scenario=" + s, "--duration=%d" % a.stress_seconds],
                            log, timeout=a.stress_seconds * 3 + 120)
            with open(log, errors="replace") as f:
                text = f.read()
            print(f"gate: stress {s} under {config}: "
                  f"{'ok' if rc == 0 else 'FAILED'} ({a.stress_seconds} s)", flush=True)
            if rc != 0:
                first = next((l for l in text.splitlines() if "slabfuzz:" in l or
                              "ThreadSanitizer" in l or "AddressSanitizer" in l),
                             "exit %s" % rc)
                return f"torture {s} under {config}: {first.strip()} (log: {log})"
    return None


def step_power(a, out):
    bugs = readme_fast_bugs()
    rows, lost = [], []
    # The user's defines, but the bug: each build has its own.
    extra = ["--define=" + d for d in a.define if not d.startswith("slabfuzz_bug=")]
    for bug in bugs:
        bins = zoo_campaign.build(bug, ["custom"], os.path.join(out, "power", "bin", bug), extra)
        with tempfile.TemporaryDirectory(dir=os.path.join(out, "power")) as work:
            t, title = zoo_campaign.run_one(bins["custom"], "custom", 1, POWER_SECONDS, work)
        found = t is not None and not (title or "").startswith("NOT REPRODUCIBLE")
        rows.append(f"{bug:24s} README {bugs[bug]:4.1f} s  now "
                    f"{'%.1f s' % t if t is not None else 'not found'}  {title or ''}")
        print("gate: power " + rows[-1], flush=True)
        if not found:
            lost.append(bug)
    with open(os.path.join(out, "power.txt"), "w") as f:
        f.write("\n".join(rows) + "\n")
    if lost:
        return (f"lost power: {', '.join(lost)} not found within {POWER_SECONDS} s "
                f"(README median under {POWER_MEDIAN:g} s)")
    return None


def step_oss_fuzz(a, out):
    log = log_path(out, "oss-fuzz")
    rc = run_logged([os.path.join(ROOT, "ci", "oss-fuzz-check"),
                     "--keep=" + os.path.join(out, "oss-fuzz")], log)
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        if line.startswith("  "):
            print("gate: oss-fuzz" + line, flush=True)
    if rc == 2:
        raise GateError("ci/oss-fuzz-check could not run (log: %s)" % log)
    if rc != 0:
        return (lines[-1] if lines else "ci/oss-fuzz-check failed") + f" (log: {log})"
    return None


def step_fuzz(a, out):
    fuzz_out = os.path.join(out, "fuzz")
    cmd = [sys.executable, os.path.join(ROOT, "fuzzers", "campaign.py"), "--target=" + TARGET,
           "--duration=%d" % (a.minutes * 60), "--out=" + fuzz_out, "--stop-on-crash",
           "--no-prune", "--quiet"] + ["--define=" + d for d in a.define]
    rc = run_logged(cmd, log_path(out, "fuzz"), timeout=a.minutes * 60 + 1800)
    if rc not in (0, 1):
        raise GateError(f"the fuzz campaign could not run (exit {rc}; log: "
                        f"{log_path(out, 'fuzz')})")
    pinned = pinned_titles()
    new, known = [], []
    for tfile in sorted(glob.glob(os.path.join(fuzz_out, "crashes", "*", "TITLE"))):
        with open(tfile) as f:
            title = f.read().strip()
        (known if title in pinned else new).append((title, os.path.dirname(tfile)))
    for title, d in known:
        print(f"gate: known crash (pinned in corpora/): {title}", flush=True)
    if new:
        title, d = new[0]
        minimized = os.path.join(d, "minimized.txt")
        print(f"gate: new crash: {title}\ngate: reproducer: {d}", flush=True)
        if os.path.exists(minimized):
            with open(minimized) as f:
                print(f"gate: minimized ({minimized}):\n" + f.read(), end="", flush=True)
        return f"new crash: {title}"
    return None


def main():
    ap = campaign.Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="no ci/test, 5-s stress runs, a 1-minute fuzz (what .ci/run runs)")
    ap.add_argument("--minutes", type=int, default=None)
    ap.add_argument("--stress-seconds", type=int, default=None)
    ap.add_argument("--no-test", action="store_true")
    ap.add_argument("--no-stress", action="store_true")
    ap.add_argument("--no-power", action="store_true")
    ap.add_argument("--no-oss-fuzz", action="store_true")
    ap.add_argument("--no-fuzz", action="store_true")
    ap.add_argument("--define", action="append", default=[])
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "gate"))
    a = ap.parse_args()
    if a.minutes is None:
        a.minutes = 1 if a.smoke else 10
    if a.stress_seconds is None:
        a.stress_seconds = 5 if a.smoke else 60
    if a.minutes < 1 or a.stress_seconds < 1:
        campaign.die("gate: --minutes and --stress-seconds must be at least 1")
    for d in a.define:
        if d.startswith("slabfuzz_bug=") and d.split("=", 1)[1] not in campaign.zoo_bugs():
            campaign.die(f"gate: --define {d}: no such zoo bug; known: "
                         f"{', '.join(campaign.zoo_bugs())}")
    out = os.path.abspath(a.out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        campaign.die(f"gate: --out {out}: {e.strerror}")
    steps = []
    if not (a.smoke or a.no_test):
        steps.append(("test", step_test))
    if not a.no_stress:
        steps.append(("stress", step_stress))
    if not a.no_power:
        steps.append(("power", step_power))
    if not a.no_oss_fuzz:
        steps.append(("oss-fuzz", step_oss_fuzz))
    if not a.no_fuzz:
        steps.append(("fuzz", step_fuzz))
    start = time.time()
    done = []
    for name, step in steps:
        t = time.time()
        try:
            failure = step(a, out)
        except (GateError, SystemExit) as e:  # SystemExit: zoo_campaign's build failure
            print(f"gate: cannot run ({name}): {e}", flush=True)
            sys.exit(2)
        if failure:
            print(f"gate: FAIL {name}: {failure} (after {time.time() - start:.0f} s; "
                  f"logs in {out})", flush=True)
            sys.exit(1)
        done.append(f"{name} {time.time() - t:.0f} s")
    print(f"gate: PASS ({', '.join(done) or 'nothing to do'}; {time.time() - start:.0f} s)",
          flush=True)


if __name__ == "__main__":
    main()
