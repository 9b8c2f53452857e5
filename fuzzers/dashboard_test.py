#!/usr/bin/env python3
"""dashboard_test.py - the campaign's dashboard in a real browser (Debian's chromium,
headless): a live campaign of the naive fuzz binary (which finds the boot failure at
once) serves its page; the browser loads it, and the known title is in the crash table
and the plots are drawn (the DOM after load holds a line of several points, and the
screenshot holds the plot's colour). Then the static page (--report) of the same
folder."""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CAMPAIGN = os.path.join(HERE, "campaign.py")
RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", ""))
BIN = os.path.join(RUNFILES, "fuzzers", "kmalloc_obj_naive_fuzz_bin")
EXPECT = os.path.join(RUNFILES, "corpora", "regressions", "naive_boot_fails.txt")
PLOT_RGB = (0x1f, 0x77, 0xb4)  # dashboard.py's colour of the executions-a-second plot


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no chromium: ci/setup.sh installs Debian's chromium package")


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, rows, prev = zlib.decompress(idat), [], bytearray(w * bpp)
    stride = w * bpp
    for y in range(h):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


class Dashboard(unittest.TestCase):
    def setUp(self):
        if "TSAN_OPTIONS" in os.environ:
            # The campaign drives a libFuzzer engine, which ci/fuzz builds with ASan
            # (--config=libfuzzer); under --config=tsan the fuzz binary never gets
            # past its start (checked in the default and asan configurations).
            self.skipTest("a fuzzing campaign does not run under TSan")
        self.dir = tempfile.mkdtemp()
        self.out = os.path.join(self.dir, "campaign")
        with open(EXPECT) as f:
            self.title = next(l for l in f if l.startswith("# expect: "))[len("# expect: "):].strip()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def browser(self, url, *args):
        r = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                            "--hide-scrollbars", "--user-data-dir=" + os.path.join(self.dir, "profile"),
                            *args, url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, timeout=120, cwd=self.dir)
        self.assertEqual(r.returncode, 0)
        return r.stdout

    def check_page(self, url):
        dom = self.browser(url, "--dump-dom")
        self.assertIn(f'<td class="title">{self.title}</td>', dom)
        lines = [p for p in dom.split("<polyline")[1:]]
        self.assertEqual(len(lines), 3, "three plots")
        points = lines[0].split('points="', 1)[1].split('"', 1)[0].split()
        self.assertGreaterEqual(len(points), 2, "the executions plot has a line")
        shot = os.path.join(self.dir, "shot.png")
        self.browser(url, "--screenshot=" + shot, "--window-size=1300,900")
        w, h, rows = png_pixels(shot)
        near = sum(1 for row in rows for px in row
                   if all(abs(px[i] - PLOT_RGB[i]) <= 24 for i in range(3)))
        self.assertGreater(near, 50, "the executions plot's line is drawn")

    def test_live_and_static(self):
        proc = subprocess.Popen([sys.executable, CAMPAIGN, "--binary=" + BIN, "--duration=0",
                                 "--out=" + self.out, "--http=127.0.0.1:0", "--stats-every=0.5",
                                 "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = None
            for _ in range(1200):  # until the page has a title and a few records
                try:
                    with open(os.path.join(self.out, "dashboard.url")) as f:
                        url = f.read().strip()
                    with open(os.path.join(self.out, "stats.jsonl")) as f:
                        recs = [json.loads(l) for l in f if l.strip()]
                    titles = []
                    for d in os.listdir(os.path.join(self.out, "crashes")):
                        if os.path.exists(os.path.join(self.out, "crashes", d, "seen.json")):
                            with open(os.path.join(self.out, "crashes", d, "TITLE")) as f:
                                titles.append(f.read().strip())
                    if url and len(recs) >= 4 and self.title in titles:
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.1)
            self.assertIsNotNone(url, "no dashboard.url")
            self.check_page(url)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            proc.stderr.close()
        r = subprocess.run([sys.executable, CAMPAIGN, "--report", "--out=" + self.out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_page("file://" + os.path.join(self.out, "dashboard.html"))

    def test_conversion_numbers(self):
        # A conversion target's counts, as the campaign records them, on the page.
        os.makedirs(os.path.join(self.out, "crashes"))
        with open(os.path.join(self.out, "stats.jsonl"), "w") as f:
            for t in (5, 10):
                f.write(json.dumps({"time": t, "execs": 100 * t, "execs_per_sec": 100,
                                    "edges": 40, "features": 90, "corpus": 7, "crashes": 0,
                                    "titles": 0, "restarts": 0,
                                    "conversion": [100 * t, 90 * t, 88 * t, 3]}) + "\n")
        r = subprocess.run([sys.executable, CAMPAIGN, "--report", "--out=" + self.out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        dom = self.browser("file://" + os.path.join(self.out, "dashboard.html"), "--dump-dom")
        self.assertIn('<p id="conversion">conversion: 1,000 programs on both; zalloc survived '
                      '900; kmalloc_obj survived 880 of those; kmalloc_obj survived 3 that '
                      'zalloc did not</p>', dom)


if __name__ == "__main__":
    unittest.main()
