#!/usr/bin/env python3
"""campaign_speed.py - is ci/fuzz as fast as the engine it drives?

    fuzzers/campaign_speed.py [--target=NAME] [--seconds=60] [--rounds=3] [--cpu=0]

Builds the target's libFuzzer binary (as ci/fuzz does), then, on one core (taskset),
runs back to back for --seconds each: the bare binary (libFuzzer with the dictionary,
ci/fuzz's flags, a copy of the seed corpus) and the campaign (fuzzers/campaign.py
--binary on another copy). Executions a second: the bare engine's from its final
statistics (stat::number_of_executed_units over the wall time it ran), the campaign's
from its summary. Prints each round's figures and ratio (campaign / bare) and the
median ratio.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import campaign

ROOT = campaign.ROOT


def bare(binary, corpus, seconds, cpu, work, max_len):
    args = ["taskset", "-c", str(cpu), binary, "-max_total_time=%d" % seconds,
            "-max_len=%d" % max_len, "-timeout=30", "-print_final_stats=1",
            "-artifact_prefix=" + work + "/"]
    d = campaign.dict_beside(binary)
    if d:
        args.append("-dict=" + d)
    t = time.time()
    r = subprocess.run(args + [corpus], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, errors="replace")
    took = time.time() - t
    m = re.search(r"stat::number_of_executed_units: (\d+)", r.stdout)
    if not m:
        sys.exit("campaign_speed: the bare engine printed no final statistics:\n"
                 + r.stdout[-2000:])
    return int(m.group(1)) / took


def campaigned(binary, corpus, seconds, cpu, out, max_len):
    shutil.copytree(corpus, os.path.join(out, "corpus"))
    r = subprocess.run(["taskset", "-c", str(cpu), sys.executable,
                        os.path.join(ROOT, "fuzzers", "campaign.py"), "--binary=" + binary,
                        "--duration=%d" % seconds, "--out=" + out, "--quiet",
                        "--max-len=%d" % max_len],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    m = re.search(r"executions (\d+) \((\d+)/s\)", r.stdout)
    if not m:
        sys.exit("campaign_speed: the campaign printed no summary:\n" + r.stdout[-2000:])
    return float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="kmalloc_obj_reserved_fuzz")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--max-len", type=int, default=16 + 8 * 128)
    a = ap.parse_args()
    if a.seconds < 5 or a.rounds < 1:
        campaign.die("--seconds must be at least 5 and --rounds at least 1")
    bin_dir = campaign.build(a.target, "libfuzzer", [])
    binary = os.path.join(bin_dir, "fuzzers", a.target + "_bin")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        seeds = os.path.join(tmp, "seeds")
        campaign.seed_corpus(bin_dir, a.target, seeds)
        for i in range(a.rounds):
            work = os.path.join(tmp, f"bare-{i}")
            shutil.copytree(seeds, work)
            b = bare(binary, work, a.seconds, a.cpu, tmp, a.max_len)
            c = campaigned(binary, seeds, a.seconds, a.cpu, os.path.join(tmp, f"camp-{i}"),
                           a.max_len)
            ratios.append(c / b)
            print(f"round {i + 1}: bare {b:.0f} exec/s, campaign {c:.0f} exec/s, "
                  f"ratio {c / b:.2f}", flush=True)
    print(f"median ratio (campaign / bare): {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
