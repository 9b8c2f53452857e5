#!/usr/bin/env python3
"""oss_fuzz_package.py - packs a fuzzer as OSS-Fuzz and ClusterFuzzLite expect it in $OUT
(the //fuzzers:NAME_oss_fuzz targets; rules_fuzzing names its packaging the same way):

    oss_fuzz_package.py --name=NAME --bin=FUZZ_BINARY --compile=COMPILE --dict=DICT
                        --max-len=N --out=NAME_oss_fuzz.tar SEED...

The archive holds NAME (the fuzz binary), NAME_seed_corpus.zip (the seeds, text
programs compiled to the binary form the engine reads, named by content hash),
NAME.dict and NAME.options (libFuzzer's flags as ci/fuzz passes them). Entries are
written in a fixed order with fixed times: the same inputs give the same bytes.
"""
import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--compile", required=True)
    ap.add_argument("--dict", required=True)
    ap.add_argument("--max-len", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("seeds", nargs="*")
    a = ap.parse_args()

    seeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(a.seeds):
            if path.endswith(".txt"):
                dest = os.path.join(tmp, "seed")
                r = subprocess.run([a.compile, path, dest], stderr=subprocess.PIPE, text=True)
                if r.returncode != 0:
                    sys.exit(f"oss_fuzz_package: {path}: {r.stderr.strip()}")
                with open(dest, "rb") as f:
                    data = f.read()
            elif os.path.isfile(path) and not path.endswith((".md", "BUILD")):
                with open(path, "rb") as f:
                    data = f.read()
            else:
                continue
            seeds[hashlib.sha1(data).hexdigest()] = data

    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(seeds):
            z.writestr(zipfile.ZipInfo(name, FIXED_TIME), seeds[name])
    options = ("[libfuzzer]\n"
               f"max_len = {a.max_len}\n"
               "timeout = 30\n"
               f"dict = {a.name}.dict\n").encode()
    with open(a.bin, "rb") as f:
        binary = f.read()
    with open(a.dict, "rb") as f:
        dictionary = f.read()

    with tarfile.open(a.out, "w") as t:
        for name, data, mode in ((a.name, binary, 0o755),
                                 (a.name + "_seed_corpus.zip", zbuf.getvalue(), 0o644),
                                 (a.name + ".dict", dictionary, 0o644),
                                 (a.name + ".options", options, 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 315532800
            t.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
