#!/usr/bin/env python3
"""campaign.py - run a fuzzing campaign and keep everything it finds.

    fuzzers/campaign.py [--target=NAME] [--engine=libfuzzer|afl] [--duration=SECONDS]
                        [--out=DIR] [--jobs=N] [--define=K=V ...] [--keep-per-title=K]
                        [--binary=BIN] [--max-len=N] [--prune | --no-prune]
                        [--http=HOST:PORT] [--report] [--stop-on-crash] [--sync=DIR]
                        [--quiet]

Builds the target's fuzz binary, seeds the corpus from corpora/NAME/ (text programs are
compiled to binary), fuzzes for --duration seconds (0: until stopped), prints the
numbers every 5 seconds, and ends with a summary of the crashes found, deduplicated by
their one-line title.

The engine is supervised, not wrapped: at one job libFuzzer runs as itself (no fork
mode) and is started again from the grown corpus after each crash; corpus inputs that
crash as it loads leave the corpus, and when even the empty program crashes the
campaign says so and stops. --jobs=N > 1 uses libFuzzer's fork mode. Triage runs
beside the engine: every crash is replayed and filed as it appears, and the first
input of each new title is minimized.

--stop-on-crash ends the campaign once the first crash is filed and minimized (the
gate's code-change mode, as ClusterFuzzLite's). --sync=DIR shares the corpus with
every other campaign given the same folder, on this machine or another that mounts it
(Syncer: every 30 s, inputs named by content hash, nothing overwritten, nothing read
half-written).

When it ends (not when stopped) the corpus is pruned to a subset with the same
coverage (libFuzzer's -merge=1; --no-prune keeps it whole); --prune only prunes.

Executions are counted by the target itself (SLABFUZZ_EXEC_COUNTER, fuzz_target.cc),
coverage, features and corpus size come from the engine; the same numbers go to the
live line and to stats.jsonl.

SIGINT, SIGTERM and SIGHUP stop it within a few seconds wherever it was started from (a
terminal, a script's background job, a service manager): the engine and every child
are ended, the summary is written, the corpus and crashes stay.

--http=HOST:PORT serves a live dashboard (fuzzers/dashboard.py: the numbers, plots over
time, the crash table with the minimized reproducers); every campaign also leaves it
as dashboard.html, and --report only writes that page for an output folder.

Everything lives in the output folder (default out/fuzz/NAME), which survives the
crash of a target and a stop:
    corpus/              the grown corpus (binary programs)
    crashes/raw/         crashing inputs not triaged yet (the engine's files)
    crashes/<title>/     one folder per distinct title: up to --keep-per-title
                         reproducers with their reports (the title on line 1), TITLE,
                         seen.json (count, first and last seen) and minimized.txt
                         (the first one minimized, same title)
    stats.jsonl          every 5 s: time, execs, execs_per_sec (over the last 5 s),
                         edges, features, corpus, crashes, titles, restarts
    summary.txt          the last summary
    dashboard.html       the dashboard, as the campaign ended (dashboard.url: the live one)
    engine.log           the engine's own output
Exit status: 0 if nothing was found, 1 if a crash was found, 2 on bad usage, an I/O
problem or a failed build (one line on standard error).
"""
import argparse
import glob
import hashlib
import json
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard  # noqa: E402  (this directory: the campaign's page)


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


STOP = None  # the campaign's Stop, once main() has installed it


def bazel(*args, capture=False):
    """Runs bazel; a stop request cancels it (SIGINT, as Ctrl-C would) and ends the
    campaign with exit 2."""
    p = subprocess.Popen(["bazel", *args], cwd=ROOT,
                         stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None, text=True)
    result = {}
    if capture:
        t = threading.Thread(target=lambda: result.update(zip(("out", "err"), p.communicate())),
                             daemon=True)
        t.start()
    while p.poll() is None:
        if STOP is not None and STOP.requested:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                p.kill()
            die("stopped during the build")
        time.sleep(0.1)
    if capture:
        t.join()
    return subprocess.CompletedProcess(p.args, p.returncode, result.get("out", ""),
                                       result.get("err", ""))


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


def run_child(args, timeout, abort=None):
    """Runs args in a session of its own, output captured, and kills the whole session at
    the timeout or once `abort` (a threading.Event) is set. Returns (returncode, output),
    output None if it ran out of time; None if aborted or it could not start."""
    try:
        child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, errors="replace", start_new_session=True)
    except OSError:
        return None
    out = []
    reader = threading.Thread(target=lambda: out.append(child.stdout.read()), daemon=True)
    reader.start()
    deadline = time.time() + timeout
    while child.poll() is None:
        aborted = abort is not None and abort.is_set()
        if aborted or time.time() > deadline:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
            reader.join(1)
            child.stdout.close()
            return None if aborted else (-1, None)
        time.sleep(0.02)
    reader.join(5)
    child.stdout.close()
    return child.returncode, (out[0] if out else "")


def replay_result(r):
    """(title, output) of a run_child() result of one input: a run out of time is a hang
    (libFuzzer's -timeout artifact: a run that never reaches a preemption point again
    hangs its replay too)."""
    return (HANG_TITLE, HANG_TITLE + "\n") if r is None or r[1] is None else title_of(r[1])


def replay(binary, path):
    """Runs one input; returns (title, output). Both engines' binaries run a file given
    as an argument (AFL++'s driver ignores standard input unless told "-")."""
    return replay_result(run_child([binary, path], HANG_SECONDS))


KEEP_PER_TITLE = 5


def report_text(title, out):
    """A saved report: the title on line 1, then the target's output from its report on
    (the engine's banner before it dropped)."""
    at = out.find(title)
    return title + "\n" + (out[at + len(title):].lstrip("\n") if at >= 0 else "\n" + out)


MINIMIZE_SECONDS = 30


class Progress:
    """The campaign's numbers: executions from the targets' shared counter
    (SLABFUZZ_EXEC_COUNTER, fuzz_target.cc), which counts every execution of every
    engine process as it happens; coverage, features and corpus size from the engine's
    own reports (libFuzzer's status lines, AFL++'s fuzzer_stats)."""

    def __init__(self, counter_path):
        self.counter_path = counter_path
        self.execs = 0
        self.cov = 0
        self.ft = 0
        self.corpus = 0
        self.inited = False  # this engine session has loaded its corpus
        self.artifacts = []  # the crash files this engine session wrote
        self.session_base = 0  # executions before this engine session (a target built
                               # without the counter: the engine's own count)

    def feed(self, line):
        m = re.match(r"#(\d+)\s", line)
        if m:  # a status line (cov: is absent when the build has no PC table)
            for key, attr in (("cov", "cov"), ("ft", "ft"), ("corp", "corpus")):
                v = re.search(r"\b%s: (\d+)" % key, line)
                if v:
                    setattr(self, attr, int(v.group(1)))
            self.execs = max(self.execs, self.session_base + int(m.group(1)))
        if re.search(r"\sINITED\s", line):
            self.inited = True
        m = re.search(r"Test unit written to (\S+)", line)
        if m:
            self.artifacts.append(m.group(1))

    def read_counter(self):
        try:
            with open(self.counter_path, "rb") as f:
                data = f.read(8)
        except OSError:
            return
        if len(data) == 8:
            self.execs = max(self.execs, int.from_bytes(data, "little"))


class Stop:
    """SIGINT, SIGTERM and SIGHUP, from a terminal, a script that started the campaign
    with '&' (which leaves SIGINT ignored) or a service manager: each stops the
    campaign. Installed before any engine starts, so that no engine inherits an
    ignored signal; the engines run in sessions of their own and are told here."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.signum = None
        self.groups = set()
        self.event = threading.Event()
        for s in self.SIGNALS:
            signal.signal(s, self._on_signal)

    def _on_signal(self, signum, frame):
        if self.signum is None:
            self.signum = signum
        self.request()

    def request(self):
        """Stops the campaign: a signal's doing, or from inside (--stop-on-crash)."""
        self.event.set()
        for pg in list(self.groups):
            try:
                os.killpg(pg, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                pass

    @property
    def requested(self):
        return self.event.is_set()


def end_group(proc, stop, grace=1.5):
    """Ends an engine and everything it started (its session): SIGINT, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
    try:  # children left behind by a parent that exited on its own
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    stop.groups.discard(proc.pid)


class Triager(threading.Thread):
    """Triage while fuzzing: every new crashing input (in raw/, or an AFL++ crash
    folder) is replayed, filed under its title and taken out of raw/; the first input
    of a new title is minimized. Stopping kills a replay or minimization under way; what
    is left in raw/ stays there, counted as not triaged."""

    def __init__(self, binary, raw, crash_root, keep, inboxes=()):
        super().__init__(daemon=True)
        self.binary, self.raw, self.crash_root, self.keep = binary, raw, crash_root, keep
        self.inboxes = list(inboxes)  # globs of crash files another engine writes
        self.titles = {}
        self.latest = None
        self.copied = set()
        self.lock = threading.Lock()
        self.finish = threading.Event()  # triage what is there, then end
        self.abort = threading.Event()   # end now
        self.on_filed = None  # called with each title once its input is filed (and minimized)

    def pending(self):
        try:
            return sorted(os.path.join(self.raw, f) for f in os.listdir(self.raw)
                          if not f.startswith("README") and not f.endswith(".tmp"))
        except OSError:
            return []

    def collect(self):
        for pattern in self.inboxes:
            for p in glob.glob(pattern):
                if p in self.copied or os.path.basename(p).startswith("README"):
                    continue
                self.copied.add(p)
                name = os.path.basename(os.path.dirname(os.path.dirname(p))) + "-" + \
                    os.path.basename(p).replace(":", "_").replace(",", "_")
                tmp = os.path.join(self.raw, name + ".tmp")
                try:
                    shutil.copy(p, tmp)
                    os.replace(tmp, os.path.join(self.raw, name))
                except OSError:
                    pass

    def run(self):
        while not self.abort.is_set():
            self.collect()
            files = self.pending()
            for path in files:
                if self.abort.is_set():
                    return
                self.file(path)
            if not files and self.finish.is_set():
                return
            if not files:
                self.abort.wait(0.5)

    def run_child(self, args, timeout):
        """A replay or minimization, killed if the campaign stops: (returncode, output) or
        None."""
        return run_child(args, timeout, self.abort)

    def file(self, path):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return  # gone meanwhile (the folder cleared under a running campaign)
        r = self.run_child([self.binary, path], HANG_SECONDS)
        if r is None:
            return  # stopped: the input stays in raw/
        title, out = replay_result(r)
        d = os.path.join(self.crash_root, slug(title))
        os.makedirs(d, exist_ok=True)
        dest = os.path.join(d, "input-" + hashlib.sha1(data).hexdigest()[:16])
        kept = sorted(os.path.join(d, f) for f in os.listdir(d)
                      if f.startswith("input-") and not f.endswith(".report.txt"))
        if not os.path.exists(dest) and len(kept) < self.keep:
            shutil.copy(path, dest)
            with open(dest + ".report.txt", "w") as f:
                f.write(report_text(title, out))
        elif not os.path.exists(dest):
            dest = kept[0]  # the title's folder is full: counted only
        with open(os.path.join(d, "TITLE"), "w") as f:
            f.write(title + "\n")
        with self.lock:
            self.titles[title] = self.titles.get(title, 0) + 1
            self.latest = title
        seen = os.path.join(d, "seen.json")
        try:
            with open(seen) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            rec = {"title": title, "count": 0, "first": time.time()}
        rec.update(count=rec.get("count", 0) + 1, last=time.time())
        with open(seen + ".tmp", "w") as f:
            json.dump(rec, f)
        os.replace(seen + ".tmp", seen)  # the dashboard's count, over every campaign here
        if os.path.dirname(os.path.abspath(path)) == os.path.abspath(self.raw):
            try:
                os.unlink(path)  # filed (or counted): raw/ holds what is not triaged
            except OSError:
                pass
        minimized = os.path.join(d, "minimized.txt")
        if title != HANG_TITLE and not os.path.exists(minimized):
            r = self.run_child([self.binary, "--minimize", dest, "--out", minimized,
                                "--max-seconds", str(MINIMIZE_SECONDS)],
                               MINIMIZE_SECONDS + 2 * HANG_SECONDS)
            if r and r[0] == 0 and r[1] and r[1].strip():
                print("campaign: " + r[1].strip().splitlines()[-1], flush=True)
        if self.on_filed is not None:
            self.on_filed(title)

    def snapshot(self):
        with self.lock:
            return dict(self.titles), self.latest


class Syncer(threading.Thread):
    """Corpus sync (--sync=DIR), as AFL++'s -M/-S share a folder: every `every` seconds
    this campaign exports its corpus inputs it has not exported yet and imports the
    inputs others exported. A file in DIR is named by the SHA-1 of its content: one
    input has one name whoever found it, and an existing name is never written again
    (no clobbering). Writes go to a dotted temporary name first and are linked into
    place, so a reader never sees a partial file; readers skip dotted names. Imports
    land in the corpus under their hash, where libFuzzer's periodic corpus reload takes
    them in (AFL++ reads DIR itself, as a foreign queue: -F)."""

    def __init__(self, sync_dir, exports, imports, every):
        super().__init__(daemon=True)
        self.dir, self.exports, self.imports, self.every = sync_dir, exports, imports, every
        self.seen = set()      # hashes in DIR we know of (exported or imported)
        self.done = set()      # our own paths already exported
        self.exported = self.imported = 0
        self.finish = threading.Event()

    @staticmethod
    def put(folder, name, data):
        """Creates folder/name with data unless it exists; True if it wrote it."""
        dest = os.path.join(folder, name)
        if os.path.exists(dest):
            return False
        tmp = os.path.join(folder, f".tmp-{name}-{os.getpid()}-{threading.get_ident()}")
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, dest)  # fails if another campaign got there first
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def once(self):
        for pattern in self.exports:
            for path in sorted(glob.glob(pattern)):
                if path in self.done or os.path.basename(path).startswith(".") or \
                        not os.path.isfile(path):
                    continue
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if torn(path, data):
                    continue  # being written: next time, whole (or dropped, if torn)
                h = hashlib.sha1(data).hexdigest()
                self.done.add(path)
                self.seen.add(h)
                if self.put(self.dir, h, data):
                    self.exported += 1
        try:
            names = sorted(os.listdir(self.dir))
        except OSError:
            return
        for name in names:
            if name.startswith(".") or name in self.seen:
                continue
            self.seen.add(name)
            if self.imports is None:
                continue
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if hashlib.sha1(data).hexdigest() != name:
                continue  # not an input a campaign exported
            if self.put(self.imports, name, data):
                self.done.add(os.path.join(self.imports, name))  # not exported back
                self.imported += 1

    def run(self):
        while True:
            try:
                self.once()
            except OSError as e:
                print(f"campaign: sync with {self.dir}: {e.strerror}", flush=True)
            if self.finish.wait(self.every):
                try:
                    self.once()  # what the last seconds found goes out too
                except OSError:
                    pass
                return


def title_of(out):
    m = TITLE_RE.search(out)
    if m:
        return m.group(0), out
    m = re.search(r"ERROR: AddressSanitizer: ([\w-]+)", out)
    if m:
        return "asan: " + m.group(1), out
    m = re.search(r"runtime error: ([^\n]{0,80})", out)
    if m:
        return "ubsan: " + m.group(1), out
    return "slabfuzz: target-crash: no slabfuzz title (see report)", out


def triage(binary, raw_dir, crash_root, keep=KEEP_PER_TITLE):
    """Files every input in raw_dir under its title (at most `keep` inputs a title, the
    rest counted) and minimizes the first of each; returns {title: count}."""
    t = Triager(binary, raw_dir, crash_root, keep)
    t.finish.set()
    t.run()
    return t.titles


class Campaign:
    """One campaign: the engine run and supervised, the numbers every 5 s, triage
    beside it."""


    def __init__(self, a, binary, out, corpus, raw, dict_path, stop):
        self.a, self.binary, self.out, self.corpus, self.raw = a, binary, out, corpus, raw
        self.dict_path, self.stop = dict_path, stop
        self.counter = os.path.join(out, "execs.counter")
        with open(self.counter, "wb") as f:
            f.write(b"\0" * 8)
        self.progress = Progress(self.counter)
        inboxes = [os.path.join(out, "afl", "*", "crashes", "id:*")] if a.engine == "afl" else []
        self.triager = Triager(binary, raw, os.path.join(out, "crashes"), a.keep_per_title,
                               inboxes)
        self.stats = open(os.path.join(out, "stats.jsonl"), "a")
        self.start = time.time()
        self.last_tick = (self.start, 0)
        self.restarts = 0
        self.every_input_crashes = False
        self.sync_dir = None  # --sync: afl-fuzz reads the shared folder as a foreign queue
        self.deadline = self.start + a.duration if a.duration else None
        self.tick_every = a.stats_every  # seconds between two records of the numbers

    def tick(self, final=False):
        now = time.time()
        self.progress.read_counter()
        titles, latest = self.triager.snapshot()
        t0, e0 = self.last_tick
        rate = (self.progress.execs - e0) / max(now - t0, 1e-9)
        self.last_tick = (now, self.progress.execs)
        crashes = sum(titles.values()) + len(self.triager.pending())
        rec = {"time": round(now - self.start, 1), "execs": self.progress.execs,
               "execs_per_sec": round(rate, 1), "edges": self.progress.cov,
               "features": self.progress.ft, "corpus": self.progress.corpus,
               "crashes": crashes, "titles": len(titles), "restarts": self.restarts}
        conv = conversion_counts(self.counter)
        if conv is not None:  # a conversion target: compared, zalloc ok, both ok, reverse
            rec["conversion"] = conv
        self.stats.write(json.dumps(rec) + "\n")
        self.stats.flush()
        if self.a.quiet or final:
            return
        line = (f"[{int(now - self.start):5d}s] execs {self.progress.execs} ({rate:.0f}/s) "
                f"cov {self.progress.cov} ft {self.progress.ft} corpus {self.progress.corpus} "
                f"crashes {crashes} titles {len(titles)}")
        if conv is not None:
            line += f" zalloc-ok {conv[1]} both-ok {conv[2]} reverse {conv[3]}"
        if self.every_input_crashes:
            line += f" -- every input crashes: {latest or '(being triaged)'}"
        print(line, flush=True)

    def remaining(self):
        return None if self.deadline is None else self.deadline - time.time()

    def engine_args(self):
        a = self.a
        if a.engine == "afl":
            seeds = self.corpus if os.listdir(self.corpus) else None
            if seeds is None:
                seeds = os.path.join(self.out, "afl-seed")
                os.makedirs(seeds, exist_ok=True)
                with open(os.path.join(seeds, "empty"), "wb") as f:
                    f.write(b"\0" * 16)
            args = ["afl-fuzz", "-i", seeds, "-o", os.path.join(self.out, "afl"),
                    "-G", str(a.max_len)]  # programs as long as libFuzzer's (-G = -max_len)
            if self.sync_dir:
                args += ["-M", "main", "-F", self.sync_dir]  # the others' inputs, from --sync
            left = self.remaining()
            if left is not None:
                args += ["-V", str(max(1, int(left + 0.5)))]
            return args + ["--", self.binary], dict(AFL_ENV, AFL_CUSTOM_MUTATOR_LIBRARY=self.mutator)
        args = [self.binary, "-artifact_prefix=" + self.raw + "/", "-max_len=%d" % a.max_len,
                "-timeout=30", "-print_final_stats=1"]
        if a.jobs > 1:
            # Several processes: libFuzzer's fork mode, which keeps going past crashes.
            args += ["-fork=%d" % a.jobs, "-ignore_crashes=1", "-ignore_timeouts=1",
                     "-ignore_ooms=1"]
        left = self.remaining()
        if left is not None:
            args.append("-max_total_time=%d" % max(1, int(left + 0.5)))
        if self.dict_path:
            args.append("-dict=" + self.dict_path)
        return args + [self.corpus], {}

    def session(self):
        """Runs the engine once; returns its exit status (None if stopped)."""
        args, env = self.engine_args()
        env = dict(os.environ, SLABFUZZ_EXEC_COUNTER=self.counter, **env)
        self.progress.inited = False
        self.progress.artifacts = []
        self.progress.session_base = self.progress.execs
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", env=env, start_new_session=True)
        self.stop.groups.add(proc.pid)
        lines = queue.Queue()

        def reader():
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()
        with open(os.path.join(self.out, "engine.log"), "a") as log:
            while True:
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    line = ""
                if line is None:
                    break
                if line:
                    log.write(line)
                    self.progress.feed(line)
                if self.stop.requested:
                    break
                left = self.remaining()
                if left is not None and left < -1.0:
                    break  # the engine overran its time: --duration holds
                if time.time() - self.last_tick[0] >= self.tick_every:
                    if self.a.engine == "afl":
                        self.read_afl_stats()
                    self.tick()
        end_group(proc, self.stop, grace=1.0 if self.stop.requested else 1.5)
        if self.a.engine == "afl":
            self.read_afl_stats()
        return None if self.stop.requested else proc.returncode

    def read_afl_stats(self):
        # AFL++ without its UI prints no status lines, and rewrites fuzzer_stats (in
        # place: one caught half-written is skipped) only now and then: the corpus is
        # counted in its queue folder, the executions by the target's counter.
        for q in glob.glob(os.path.join(self.out, "afl", "*", "queue")):
            try:
                self.progress.corpus = sum(1 for f in os.listdir(q) if f.startswith("id:"))
            except OSError:
                pass
        for path in glob.glob(os.path.join(self.out, "afl", "*", "fuzzer_stats")):
            try:
                with open(path) as f:
                    stats = dict(line.split(":", 1) for line in f if ":" in line)
                stats = {k.strip(): v.strip() for k, v in stats.items()}
                self.progress.cov = int(stats.get("edges_found", self.progress.cov))
            except (OSError, ValueError):
                continue

    def run(self):
        self.triager.start()
        while not self.stop.requested:
            left = self.remaining()
            if left is not None and left <= 0.5:
                break
            rc = self.session()
            if rc is None or self.a.engine == "afl" or self.a.jobs > 1:
                break  # stopped, or an engine that keeps going past crashes ended
            left = self.remaining()
            if rc == 0 or (left is not None and left <= 0.5):
                break  # its time is up
            # A crash, timeout or OOM ended libFuzzer: go on from the grown corpus.
            if not self.progress.inited:
                if self.drop_crashing() == 0:
                    self.every_input_crashes = True
                    self.tick()
                    break
            self.restarts += 1
        self.triager.finish.set()
        if self.stop.requested:
            self.triager.abort.set()
        self.triager.join(2.0 if self.stop.requested else None)
        self.tick(final=True)
        self.stats.close()

    def drop_crashing(self):
        """The session crashed while loading its corpus: the inputs that crashed (the
        engine names an artifact by the sha1 of its content) leave the corpus, so that
        the next session gets past them. Returns how many left."""
        hashes = {os.path.basename(p).split("-", 1)[-1] for p in self.progress.artifacts}
        dropped = 0
        for f in os.listdir(self.corpus):
            p = os.path.join(self.corpus, f)
            try:
                with open(p, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            # libFuzzer runs (and names) an input longer than -max_len cut to it.
            if {hashlib.sha1(data).hexdigest(),
                    hashlib.sha1(data[:self.a.max_len]).hexdigest()} & hashes:
                os.unlink(p)
                dropped += 1
        return dropped


TORN_NAME = re.compile(r"[0-9a-f]{40}")


def torn(path, data):
    """True if path is an input libFuzzer was writing: it names an input by its SHA-1
    and writes it in place, so a stop between the open and the write leaves a name
    its content does not match (seen: empty files)."""
    name = os.path.basename(path)
    return bool(TORN_NAME.fullmatch(name)) and hashlib.sha1(data).hexdigest() != name


def drop_torn(corpus):
    """Removes the inputs a stopped engine left half-written; returns how many."""
    n = 0
    for name in os.listdir(corpus):
        path = os.path.join(corpus, name)
        try:
            with open(path, "rb") as f:
                if torn(path, f.read()):
                    os.unlink(path)
                    n += 1
        except OSError:
            continue
    return n


def prune(binary, corpus, max_len, stop, raw):
    """Reduces the corpus to a subset with the same coverage and features (libFuzzer's
    -merge=1 into a new folder, which then replaces the old one; a stop or a failure
    leaves the old one). Returns (before, after) sizes, or None if it did not finish."""
    before = len(os.listdir(corpus))
    new = corpus + ".pruned"
    shutil.rmtree(new, ignore_errors=True)
    os.makedirs(new)
    proc = subprocess.Popen([binary, "-merge=1", "-max_len=%d" % max_len, "-timeout=30",
                             "-artifact_prefix=" + raw + "/", new, corpus],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    stop.groups.add(proc.pid)
    while proc.poll() is None and not stop.requested:
        time.sleep(0.1)
    end_group(proc, stop, grace=1.0)
    if stop.requested or proc.returncode != 0 or (before and not os.listdir(new)):
        shutil.rmtree(new, ignore_errors=True)
        return None
    old = corpus + ".old"
    shutil.rmtree(old, ignore_errors=True)
    os.rename(corpus, old)
    os.rename(new, corpus)
    shutil.rmtree(old, ignore_errors=True)
    return before, len(os.listdir(corpus))


def zoo_bugs():
    """The zoo's bug names (fuzzers/zoo.bzl), the values --define=slabfuzz_bug= takes."""
    text = open(os.path.join(ROOT, "fuzzers", "zoo.bzl")).read()
    block = text[text.index("ZOO_BUGS = ["):]
    block = block[:block.index("]")]
    return re.findall(r'"([A-Z0-9_]+)"', block)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints its usage too)
        die(message + " (--help for usage)")


def prepare_out(out):
    """The output folder, made and checked writable before anything runs."""
    if os.path.exists(out) and not os.path.isdir(out):
        die(f"--out {out}: exists and is not a folder")
    for d in (out, os.path.join(out, "corpus"), os.path.join(out, "crashes", "raw")):
        os.makedirs(d, exist_ok=True)
    probe = os.path.join(out, ".writable")
    with open(probe, "w") as f:
        f.write("")
    os.unlink(probe)


def conversion_counts(counter_path):
    """A conversion target's counts from the shared counter file (fuzz_target.cc:
    execs, then programs compared, zalloc survived, both survived, kmalloc_obj alone
    survived), or None if the target compares nothing."""
    try:
        with open(counter_path, "rb") as f:
            data = f.read(40)
    except OSError:
        return None
    if len(data) < 40:
        return None
    n = [int.from_bytes(data[i:i + 8], "little") for i in range(8, 40, 8)]
    return n if n[0] > 0 else None


def conversion_report(counter_path, crash_root, titles):
    """The conversion proof's lines for the summary, to paste into a review: programs
    compared, survivals on each side, and each divergence with its minimized program."""
    n = conversion_counts(counter_path)
    if n is None:
        return []
    compared, zalloc_ok, both_ok, reverse = n
    lines = ["conversion: {} programs on both; zalloc survived {}; kmalloc_obj survived {} of "
             "those ({} broke a promise zalloc kept, or a check); kmalloc_obj survived {} "
             "that zalloc did not".format(compared, zalloc_ok, both_ok, zalloc_ok - both_ok,
                                          reverse)]
    for t in sorted(titles):
        if t.startswith("slabfuzz: conversion: "):
            m = os.path.join(crash_root, slug(t), "minimized.txt")
            lines.append(f"  divergence: {t[len('slabfuzz: conversion: '):]}")
            lines.append(f"    reproducer: {m if os.path.exists(m) else os.path.dirname(m)}")
    return lines


def write_summary(out, a, c, elapsed, pruned=None):
    titles, _ = c.triager.snapshot()
    untriaged = len(c.triager.pending())
    rate = c.progress.execs / max(elapsed, 1e-9)
    how = []
    if c.stop.signum is not None:
        how.append("stopped by " + signal.Signals(c.stop.signum).name)
    elif c.stop.requested:
        how.append("stopped at the first crash")
    if c.restarts:
        how.append(f"engine restarted {c.restarts} times after crashes")
    lines = [f"target {a.target} engine {a.engine} ran {elapsed:.0f} s"
             + (f" ({'; '.join(how)})" if how else ""),
             f"executions {c.progress.execs} ({rate:.0f}/s) coverage {c.progress.cov} "
             f"features {c.progress.ft} corpus {c.progress.corpus}",
             f"crashes: {sum(titles.values()) + untriaged} inputs, {len(titles)} distinct titles"
             + (f", {untriaged} not triaged (left in crashes/raw)" if untriaged else "")]
    if pruned:
        lines.append(f"corpus pruned from {pruned[0]} to {pruned[1]} inputs (same coverage)")
    if c.every_input_crashes:
        lines.append("every input crashes, the empty program too: nothing more to fuzz")
    for t, n in sorted(titles.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {n:4d}  {t}")
    lines += conversion_report(c.counter, os.path.join(out, "crashes"), titles)
    summary = "\n".join(lines) + "\n"
    tmp = os.path.join(out, "summary.txt.tmp")
    with open(tmp, "w") as f:
        f.write(summary)
    os.replace(tmp, os.path.join(out, "summary.txt"))
    return summary, bool(titles) or untriaged > 0


def main():
    global STOP
    stop = STOP = Stop()  # first: an engine must never inherit an ignored SIGINT
    ap = Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="kmalloc_obj_reserved_fuzz")
    ap.add_argument("--compare", default=None, choices=["reserved", "naive"],
                    help="with --target=conversion_fuzz: the kmalloc_obj held to zalloc "
                         "(naive: the negative control, conversion_naive_fuzz)")
    ap.add_argument("--engine", default="libfuzzer", choices=["libfuzzer", "afl"])
    ap.add_argument("--duration", default="300",
                    help="seconds to fuzz; 0 runs until stopped (Ctrl-C, SIGTERM, SIGHUP)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--max-len", type=int, default=16 + 8 * 128)
    ap.add_argument("--define", action="append", default=[],
                    help="Bazel --define, e.g. slabfuzz_bug=RESERVE_OFF_BY_ONE (the zoo)")
    ap.add_argument("--binary", default=None, help="use this fuzz binary; do not build")
    ap.add_argument("--keep-per-title", type=int, default=KEEP_PER_TITLE,
                    help="inputs kept in each crash folder (the rest are counted)")
    ap.add_argument("--prune", action="store_true",
                    help="only prune the output folder's corpus (libFuzzer -merge=1), no fuzzing")
    ap.add_argument("--no-prune", action="store_true",
                    help="do not prune the corpus when the campaign ends")
    ap.add_argument("--http", default=None, metavar="HOST:PORT",
                    help="serve the live dashboard there (port 0: any free port)")
    ap.add_argument("--report", action="store_true",
                    help="only write the output folder's dashboard.html, no fuzzing")
    ap.add_argument("--sync", default=None, metavar="DIR",
                    help="share the corpus through DIR with other campaigns (any machine "
                         "that mounts it)")
    ap.add_argument("--sync-every", type=float, default=30.0, help=argparse.SUPPRESS)
    ap.add_argument("--stop-on-crash", action="store_true",
                    help="stop once the first crash is filed and minimized (a CI gate's mode)")
    ap.add_argument("--stats-every", type=float, default=5.0, help=argparse.SUPPRESS)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    if not re.fullmatch(r"\d+", a.duration):
        die("--duration takes a whole number of seconds (0: until stopped)")
    a.duration = int(a.duration)
    if a.jobs < 1:
        die("--jobs must be at least 1")
    if a.engine == "afl" and a.jobs > 1:
        die("--jobs > 1 is for libFuzzer (AFL++: one afl-fuzz; several campaigns share a corpus)")
    if a.keep_per_title < 1:
        die("--keep-per-title must be at least 1")
    if not 0.1 <= a.stats_every <= 3600:
        die("--stats-every takes 0.1 to 3600 seconds")
    http_at = None
    if a.http is not None:
        m = re.fullmatch(r"([\w.:-]*):(\d{1,5})", a.http)
        if not m or int(m.group(2)) > 65535:
            die(f"--http {a.http}: HOST:PORT, e.g. 127.0.0.1:8080")
        http_at = (m.group(1) or "127.0.0.1", int(m.group(2)))
    if a.max_len < 16:
        die("--max-len must be at least 16 (a program's header)")
    for d in a.define:
        if d.startswith("slabfuzz_bug="):
            bug = d.split("=", 1)[1]
            if bug not in zoo_bugs():
                die(f"--define slabfuzz_bug={bug}: no such zoo bug; known: {', '.join(zoo_bugs())}")
    if a.compare is not None:
        if a.target != "conversion_fuzz":
            die("--compare is for --target=conversion_fuzz")
        if a.compare == "naive":
            a.target = "conversion_naive_fuzz"
    if a.binary and a.target == ap.get_default("target"):
        # Named after its binary (NAME_bin, or the zoo's copies): the summary says which.
        base = os.path.basename(a.binary)
        if base.endswith("_bin") and os.path.isdir(os.path.join(ROOT, "corpora", base[:-4])):
            a.target = base[:-4]
    if not os.path.isdir(os.path.join(ROOT, "corpora", a.target)) and a.binary is None \
            and not a.report:
        die(f"no such fuzzer '{a.target}' (see corpora/ and fuzzers/BUILD)")
    out = os.path.abspath(a.out or os.path.join(ROOT, "out", "fuzz", a.target))
    if a.report:
        if not os.path.isdir(out):
            die(f"--report: no campaign output folder at {out}")
        print(f"campaign: dashboard written to {dashboard.write_report(out)}")
        sys.exit(0)
    try:
        prepare_out(out)
    except OSError as e:
        die(f"--out {out}: {e.strerror}")
    sync_dir = None
    if a.sync:
        if not 0.1 <= a.sync_every <= 3600:
            die("--sync-every takes 0.1 to 3600 seconds")
        sync_dir = os.path.abspath(a.sync)
        try:
            os.makedirs(sync_dir, exist_ok=True)
            probe = os.path.join(sync_dir, f".probe-{os.getpid()}")
            open(probe, "w").close()
            os.unlink(probe)
        except OSError as e:
            die(f"--sync {sync_dir}: {e.strerror}")
    if a.binary and not (os.path.isfile(a.binary) and os.access(a.binary, os.X_OK)):
        die(f"--binary {a.binary}: not an executable file")
    if http_at:
        try:
            server = dashboard.serve(out, *http_at)
        except OSError as e:
            die(f"--http {a.http}: {e.strerror}")
        url = f"http://{http_at[0]}:{server.server_address[1]}/"
        with open(os.path.join(out, "dashboard.url"), "w") as f:
            f.write(url + "\n")
        print(f"campaign: dashboard at {url}", flush=True)
    corpus = os.path.join(out, "corpus")
    raw = os.path.join(out, "crashes", "raw")

    if a.binary:
        binary = os.path.abspath(a.binary)
    else:
        bin_dir = build(a.target, a.engine, a.define)
        binary = os.path.join(bin_dir, "fuzzers", a.target + "_bin")
        seed_corpus(bin_dir, a.target, corpus)
    if stop.requested:
        die("stopped before fuzzing began", code=0)
    if a.prune:
        if a.engine != "libfuzzer":
            die("--prune runs libFuzzer's merge: it takes --engine=libfuzzer")
        r = prune(binary, corpus, a.max_len, stop, raw)
        if r is None:
            die("prune did not finish; the corpus is as it was")
        print(f"campaign: corpus pruned from {r[0]} to {r[1]} inputs (same coverage)")
        sys.exit(0)

    c = Campaign(a, binary, out, corpus, raw, dict_beside(binary), stop)
    if a.stop_on_crash:
        c.triager.on_filed = lambda title: stop.request()
    syncer = None
    if a.sync:
        if a.engine == "afl":
            c.sync_dir = sync_dir
            exports = [os.path.join(out, "afl", "*", "queue", "id:*")]
            imports = None  # afl-fuzz -F reads the folder itself
        else:
            exports, imports = [os.path.join(corpus, "*")], corpus
        syncer = Syncer(sync_dir, exports, imports, a.sync_every)
        syncer.start()
    if a.engine == "afl":
        info = bazel("info", "bazel-bin", capture=True)
        c.mutator = os.path.join(info.stdout.strip(), "fuzzers", "libslabfuzz_afl_mutator.so")
    print(f"campaign: {a.target} with {a.engine} for "
          f"{str(a.duration) + ' s' if a.duration else 'ever (Ctrl-C, SIGTERM or SIGHUP stops)'}"
          f"; output in {out}", flush=True)
    c.run()
    elapsed = time.time() - c.start
    if a.engine == "libfuzzer":
        drop_torn(corpus)
    if syncer is not None:
        syncer.finish.set()
        syncer.join(10)
        print(f"campaign: sync with {sync_dir}: {syncer.exported} inputs exported, "
              f"{syncer.imported} imported", flush=True)
    summary, found = write_summary(out, a, c, elapsed)
    if a.engine == "libfuzzer" and not a.no_prune and not stop.requested:
        r = prune(binary, corpus, a.max_len, stop, raw)
        if r is not None:
            c.progress.corpus = r[1]
            summary, found = write_summary(out, a, c, elapsed, pruned=r)
    dashboard.write_report(out)
    print("\n" + summary, end="")
    print(f"campaign: reproducers and reports in {os.path.join(out, 'crashes')}; "
          f"numbers every {c.tick_every:g} s in {os.path.join(out, 'stats.jsonl')}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    try:
        main()
    except OSError as e:  # a full disk, a folder removed under the campaign
        die(f"{e.filename or ''}: {e.strerror}" if e.filename else str(e))
