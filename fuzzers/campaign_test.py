#!/usr/bin/env python3
"""campaign_test.py - ci/fuzz (fuzzers/campaign.py) on the real binaries.

Triage on real crashes of the naive fuzz binary (the boot failure and the pageout
deadlock): one folder per title (names that never collide), the title on line 1 of
every report, at most K inputs kept per title with the rest counted, and minimized.txt
beside them with the same title. Stopping: a campaign started as a script's '&' job
starts it (SIGINT ignored), fuzzing the real reserved target, ends on SIGTERM, SIGINT
and SIGHUP with its summary written and no process left behind. Bad output folders:
exit 2 and one line."""
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import campaign  # noqa: E402  (the replay binary: the same contract as NAME_bin, in every configuration)

BIN = os.path.join(os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", ""),
                   "fuzzers", "kmalloc_obj_naive_fuzz")
COMPILE = os.path.join(os.path.dirname(BIN), "compile")
REGRESSIONS = os.path.join(os.path.dirname(os.path.dirname(BIN)), "corpora", "regressions")
FUZZ_BIN = os.path.join(os.path.dirname(BIN), "kmalloc_obj_reserved_fuzz_bin")
CAMPAIGN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "campaign.py")


def expect_line(path):
    with open(path) as f:
        for line in f:
            if line.startswith("# expect: "):
                return line[len("# expect: "):].strip()
    raise AssertionError(path + " has no expect line")


class Triage(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.raw = os.path.join(self.dir, "raw")
        os.makedirs(self.raw)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def raw_crash(self, name, program, variant=0):
        """A raw crash as an engine writes it: the program in binary form (variants
        differ in a trailing partial record, which decodes to the same program)."""
        out = os.path.join(self.raw, f"crash-{name}-{variant}")
        subprocess.run([COMPILE, os.path.join(REGRESSIONS, program), out], check=True)
        with open(out, "ab") as f:
            f.write(bytes([variant]) * variant)
        return out

    def test_titles_reports_cap_and_minimized(self):
        boot = expect_line(os.path.join(REGRESSIONS, "naive_boot_fails.txt"))
        deadlock = expect_line(os.path.join(REGRESSIONS, "naive_pageout_deadlock.txt"))
        for v in range(4):
            self.raw_crash("boot", "naive_boot_fails.txt", v)
        self.raw_crash("deadlock", "naive_pageout_deadlock.txt")
        root = os.path.join(self.dir, "crashes")
        titles = campaign.triage(BIN, self.raw, root, keep=2)
        self.assertEqual(titles, {boot: 4, deadlock: 1})
        folders = sorted(os.listdir(root))
        self.assertEqual(len(folders), 2)
        self.assertNotEqual(campaign.slug(boot + " A"), campaign.slug(boot + " B"))
        for title in (boot, deadlock):
            d = os.path.join(root, campaign.slug(title))
            with open(os.path.join(d, "TITLE")) as f:
                self.assertEqual(f.read(), title + "\n")
            inputs = [f for f in os.listdir(d)
                      if f.startswith("input-") and not f.endswith(".report.txt")]
            self.assertEqual(len(inputs), 2 if title == boot else 1)
            for f in inputs:
                with open(os.path.join(d, f + ".report.txt")) as r:
                    self.assertEqual(r.readline().rstrip("\n"), title)
            minimized = os.path.join(d, "minimized.txt")
            self.assertTrue(os.path.exists(minimized))
            self.assertEqual(campaign.replay(BIN, minimized)[0], title)
            with open(minimized) as m:
                self.assertEqual(m.readline().strip(), "# " + title)


class Compile(unittest.TestCase):
    def test_a_failed_compile_leaves_out_as_it_was(self):
        with tempfile.TemporaryDirectory() as d:
            bad, out = os.path.join(d, "bad.txt"), os.path.join(d, "out.bin")
            with open(bad, "w") as f:
                f.write("config backend=kmalloc_obj\ncpu0 no_such_operation\n")
            with open(out, "wb") as f:
                f.write(b"what was there")
            r = subprocess.run([COMPILE, bad, out], stderr=subprocess.PIPE, text=True)
            self.assertEqual(r.returncode, 2)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), b"what was there")
            self.assertEqual(sorted(os.listdir(d)), ["bad.txt", "out.bin"])


class ConversionReport(unittest.TestCase):
    """The conversion target's counts, read from the shared counter file, become the
    summary's lines: what was compared, who survived, each divergence and its program;
    --compare outside the conversion target is bad usage (one line, exit 2)."""

    def test_counts_become_the_report(self):
        with tempfile.TemporaryDirectory() as d:
            counter = os.path.join(d, "execs.counter")
            with open(counter, "wb") as f:
                for n in (120, 100, 90, 88, 3):
                    f.write(n.to_bytes(8, "little"))
            title = "slabfuzz: conversion: boot completes: zalloc kept it, kmalloc_obj panic: x"
            m = os.path.join(d, "crashes", campaign.slug(title))
            os.makedirs(m)
            open(os.path.join(m, "minimized.txt"), "w").close()
            lines = campaign.conversion_report(counter, os.path.join(d, "crashes"),
                                               {title: 2, "slabfuzz: panic: y": 1})
            self.assertEqual(lines[0], "conversion: 100 programs on both; zalloc survived 90; "
                             "kmalloc_obj survived 88 of those (2 broke a promise zalloc "
                             "kept, or a check); kmalloc_obj survived 3 that zalloc did not")
            self.assertEqual(lines[1:], [
                "  divergence: boot completes: zalloc kept it, kmalloc_obj panic: x",
                "    reproducer: " + os.path.join(m, "minimized.txt")])
            with open(counter, "wb") as f:
                f.write((7).to_bytes(8, "little"))  # a target that compares nothing
            self.assertEqual(campaign.conversion_report(counter, d, {}), [])

    def test_compare_is_for_the_conversion_target(self):
        r = subprocess.run([sys.executable, CAMPAIGN, "--compare=naive", "--duration=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("--compare is for --target=conversion_fuzz", r.stderr)


def processes_naming(text):
    """Live processes whose command line holds text (the campaign's output folder)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie holds nothing
        except OSError:
            continue
        if text in cmd:
            found.append((int(pid), cmd))
    return found


def hashes(folder):
    out = set()
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as f:
            out.add(hashlib.sha1(f.read()).hexdigest())
    return out


class Sync(unittest.TestCase):
    """Two campaigns share one --sync folder: what the first found is in the second's
    corpus, the folder holds only whole files named by their content's hash."""

    def setUp(self):
        if "TSAN_OPTIONS" in os.environ:
            self.skipTest("a fuzzing campaign does not run under TSan")
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def campaign(self, name, seconds):
        return subprocess.run([sys.executable, CAMPAIGN, "--binary=" + FUZZ_BIN,
                               "--duration=%d" % seconds, "--out=" + os.path.join(self.dir, name),
                               "--sync=" + os.path.join(self.dir, "shared"), "--sync-every=0.5",
                               "--no-prune", "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=120)

    def test_an_input_one_found_is_in_the_others_corpus(self):
        a = self.campaign("a", 4)
        self.assertEqual(a.returncode, 0, a.stderr)
        shared = os.path.join(self.dir, "shared")
        found_by_a = hashes(os.path.join(self.dir, "a", "corpus"))
        self.assertTrue(found_by_a, "the first campaign found nothing to share")
        for name in os.listdir(shared):
            self.assertFalse(name.startswith("."), "a temporary file was left: " + name)
        self.assertEqual(set(os.listdir(shared)), hashes(shared))  # named by content
        # Everything went out (libFuzzer replaces some inputs by smaller ones as it goes:
        # what it dropped stays shared).
        shared_by_a = hashes(shared)
        self.assertLessEqual(found_by_a, shared_by_a)
        b = self.campaign("b", 3)
        self.assertEqual(b.returncode, 0, b.stderr)
        self.assertRegex(b.stdout, r"sync with .*: \d+ inputs exported, [1-9]\d* imported")
        in_b = hashes(os.path.join(self.dir, "b", "corpus"))
        self.assertTrue(in_b & shared_by_a, "nothing the first campaign found is in the second's")
        self.assertLessEqual(in_b, hashes(shared))


class Torn(unittest.TestCase):
    """An input a stopped libFuzzer left half-written (named by the SHA-1 of what it
    was to hold) is neither shared nor kept; whole inputs and other names are."""

    def test_a_torn_input_is_dropped(self):
        d = tempfile.mkdtemp()
        try:
            whole = b"config backend=kmalloc_obj"
            name = hashlib.sha1(whole).hexdigest()
            for n, data in ((name, whole), (hashlib.sha1(b"x").hexdigest(), b""),
                            ("seed-boot.txt", b"anything")):
                with open(os.path.join(d, n), "wb") as f:
                    f.write(data)
            self.assertEqual(campaign.drop_torn(d), 1)
            self.assertEqual(sorted(os.listdir(d)), sorted([name, "seed-boot.txt"]))
        finally:
            shutil.rmtree(d)


class Stopping(unittest.TestCase):
    def setUp(self):
        if "TSAN_OPTIONS" in os.environ:
            # The campaign drives a libFuzzer engine, which ci/fuzz builds with ASan
            # (--config=libfuzzer); under --config=tsan the fuzz binary never gets
            # past its start (checked in the default and asan configurations).
            self.skipTest("a fuzzing campaign does not run under TSan")
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        for pid, _ in processes_naming(self.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir)

    def start_in_background(self, out):
        # As `ci/fuzz --duration=0 ... &` from a script: a shell starts a background job
        # with SIGINT and SIGQUIT ignored.
        def as_background_job():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        return subprocess.Popen([sys.executable, CAMPAIGN, "--binary=" + FUZZ_BIN,
                                 "--duration=0", "--out=" + out, "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=as_background_job)

    def test_signals_stop_it_with_the_summary_written(self):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with self.subTest(signal=sig.name):
                out = os.path.join(self.dir, sig.name)
                proc = self.start_in_background(out)
                log = os.path.join(out, "engine.log")
                for _ in range(600):  # the engine is fuzzing once it has said so
                    if os.path.exists(log):
                        with open(log, "rb") as f:
                            if b"INITED" in f.read():
                                break
                    time.sleep(0.1)
                self.assertTrue(processes_naming(out), "no engine running")
                sent = time.monotonic()
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    self.fail(f"still running 30 s after {sig.name}")
                took = time.monotonic() - sent
                self.assertLess(took, 3.0, f"{sig.name}: ended {took:.1f} s after it")
                err = proc.stderr.read()
                proc.stderr.close()
                self.assertEqual(proc.returncode, 0, err)
                with open(os.path.join(out, "summary.txt")) as f:
                    self.assertIn(f"stopped by {sig.name}", f.readline())
                self.assertEqual(processes_naming(out), [])

    def run_campaign(self, *args):
        return subprocess.run([sys.executable, CAMPAIGN, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)

    def assert_one_line_exit_2(self, r):
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    def test_out_at_a_file(self):
        path = os.path.join(self.dir, "a-file")
        open(path, "w").close()
        r = self.run_campaign("--binary=" + FUZZ_BIN, "--out=" + path)
        self.assert_one_line_exit_2(r)
        self.assertIn("not a folder", r.stderr)

    def test_out_in_a_read_only_folder(self):
        user = None
        if os.geteuid() == 0:  # root writes anywhere: the campaign runs as nobody
            if not os.path.exists("/usr/bin/python3"):
                self.skipTest("no /usr/bin/python3 to run as nobody")
            shared = tempfile.mkdtemp(dir="/tmp")
            self.addCleanup(shutil.rmtree, shared)
            os.chmod(shared, 0o755)
            script = os.path.join(shared, "fuzzers", "campaign.py")
            os.makedirs(os.path.dirname(script))
            shutil.copy(CAMPAIGN, script)
            shutil.copy(os.path.join(os.path.dirname(CAMPAIGN), "dashboard.py"),
                        os.path.dirname(script))
            os.chmod(os.path.dirname(script), 0o755)
            os.chmod(script, 0o644)
            ro = os.path.join(shared, "read-only")
            user = 65534
        else:
            script = CAMPAIGN
            ro = os.path.join(self.dir, "read-only")
        os.mkdir(ro)
        os.chmod(ro, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP |
                 stat.S_IROTH | stat.S_IXOTH)
        self.addCleanup(os.chmod, ro, 0o755)
        r = subprocess.run(["/usr/bin/python3" if user is not None else sys.executable,
                            script, "--binary=/bin/true", "--out=" + os.path.join(ro, "out")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           user=user, timeout=60)
        self.assert_one_line_exit_2(r)
        self.assertIn("Permission denied", r.stderr)


if __name__ == "__main__":
    unittest.main()
