#!/usr/bin/env python3
"""campaign_test.py - ci/fuzz's triage on real crashes of the naive fuzz binary (the
boot failure and the pageout deadlock): one folder per title (names that never
collide), the title on line 1 of every report, at most K inputs kept per title with
the rest counted, and minimized.txt beside them with the same title."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import campaign  # noqa: E402  (the replay binary: the same contract as NAME_bin, in every configuration)

BIN = os.path.join(os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", ""),
                   "fuzzers", "kmalloc_obj_naive_fuzz")
COMPILE = os.path.join(os.path.dirname(BIN), "compile")
REGRESSIONS = os.path.join(os.path.dirname(os.path.dirname(BIN)), "corpora", "regressions")


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


if __name__ == "__main__":
    unittest.main()
