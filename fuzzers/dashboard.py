#!/usr/bin/env python3
"""dashboard.py - a campaign's page, as syz-manager shows one: progress, plots of the
numbers over time, and the crash table.

Everything is read from a campaign's output folder (fuzzers/campaign.py says what is
where): stats.jsonl (one record every few seconds), crashes/<title>/ (TITLE, seen.json
with the count and the first and last time seen, minimized.txt, the reports) and
summary.txt. The page is plain HTML with the plots drawn as inline SVG: no script, no
library, the same page served live (`ci/fuzz --http=HOST:PORT`, reloaded every 5 s) or
written once (`ci/fuzz --report=OUT` writes OUT/dashboard.html).

    /                     the page
    /stats.jsonl          the numbers, as the campaign writes them
    /crashes/<folder>/<file>
                          a crash folder's files (reports, minimized.txt, inputs)
"""
import html
import http.server
import json
import os
import threading
import time
import urllib.parse


def read_stats(out):
    recs = []
    try:
        with open(os.path.join(out, "stats.jsonl")) as f:
            for line in f:
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass  # a line being written
    except OSError:
        pass
    return recs


def read_crashes(out):
    rows = []
    root = os.path.join(out, "crashes")
    try:
        folders = sorted(os.listdir(root))
    except OSError:
        return rows
    for d in folders:
        path = os.path.join(root, d)
        if d == "raw" or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, "TITLE")) as f:
                title = f.read().strip()
        except OSError:
            continue
        seen = {}
        try:
            with open(os.path.join(path, "seen.json")) as f:
                seen = json.load(f)
        except (OSError, ValueError):
            pass
        minimized = None
        try:
            with open(os.path.join(path, "minimized.txt")) as f:
                minimized = f.read()
        except OSError:
            pass
        reports = sorted(f for f in os.listdir(path) if f.endswith(".report.txt"))
        rows.append({"folder": d, "title": title, "count": seen.get("count", 0),
                     "first": seen.get("first"), "last": seen.get("last"),
                     "minimized": minimized, "report": reports[0] if reports else None})
    rows.sort(key=lambda r: (-r["count"], r["title"]))
    return rows


def plot(recs, key, label, color):
    """A line plot of one number over the campaign's time, as inline SVG."""
    w, h, pad = 560, 150, 36
    pts = [(r.get("time", 0), r.get(key, 0)) for r in recs if key in r]
    top = max((v for _, v in pts), default=0) or 1
    end = max((t for t, _ in pts), default=0) or 1
    coords = " ".join(f"{pad + (w - 2 * pad) * t / end:.1f},{h - pad + 10 - (h - pad) * v / top:.1f}"
                      for t, v in pts)
    last = pts[-1][1] if pts else 0
    return (f'<figure><figcaption>{html.escape(label)}: {last:,.0f}</figcaption>'
            f'<svg class="plot" data-series="{key}" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img" aria-label="{html.escape(label)} over time">'
            f'<line x1="{pad}" y1="{h - pad + 10}" x2="{w - pad}" y2="{h - pad + 10}" stroke="#999"/>'
            f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad + 10}" stroke="#999"/>'
            f'<text x="2" y="16" font-size="10">{top:,.0f}</text>'
            f'<text x="2" y="{h - pad + 10}" font-size="10">0</text>'
            f'<text x="{w - pad - 20}" y="{h - 6}" font-size="10">{end:.0f} s</text>'
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>'
            f'</svg></figure>')


def when(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def render(out, live=False, link_prefix="crashes/"):
    recs = read_stats(out)
    crashes = read_crashes(out)
    last = recs[-1] if recs else {}
    try:
        with open(os.path.join(out, "summary.txt")) as f:
            summary = f.read()
    except OSError:
        summary = ""
    running = live  # the live page is served by the running campaign
    head = ('<meta http-equiv="refresh" content="5">' if live else "")
    name = os.path.basename(os.path.normpath(out))
    rows = []
    for c in crashes:
        link = (f'<a href="{html.escape(link_prefix + c["folder"] + "/" + c["report"])}">report</a>'
                if c["report"] else "")
        mini = (f'<details><summary>minimized</summary><pre class="minimized">'
                f'{html.escape(c["minimized"])}</pre></details>' if c["minimized"] else "")
        rows.append(f'<tr><td class="title">{html.escape(c["title"])}</td>'
                    f'<td class="count">{c["count"]}</td><td>{when(c["first"])}</td>'
                    f'<td>{when(c["last"])}</td><td>{link}{mini}</td></tr>')
    table = ("<table id=\"crashes\"><thead><tr><th>title</th><th>count</th><th>first seen</th>"
             "<th>last seen</th><th>reproducer</th></tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>") if rows else "<p id=\"crashes\">no crashes</p>"
    edges_key = "edges" if any(r.get("edges") for r in recs) else "features"
    numbers = (f'{last.get("time", 0):.0f} s, {last.get("execs", 0):,} executions '
               f'({last.get("execs_per_sec", 0):,.0f}/s over the last interval), '
               f'{last.get(edges_key, 0):,} {edges_key}, corpus {last.get("corpus", 0):,}, '
               f'{last.get("crashes", 0)} crashing inputs, {last.get("titles", 0)} titles')
    conv = last.get("conversion")
    conversion = ""
    if isinstance(conv, list) and len(conv) == 4:
        conversion = ('<p id="conversion">conversion: {:,} programs on both; zalloc survived '
                      '{:,}; kmalloc_obj survived {:,} of those; kmalloc_obj survived {:,} '
                      'that zalloc did not</p>').format(*conv)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8">{head}<title>slabfuzz: {html.escape(name)}</title>
<style>
body {{ font: 14px sans-serif; margin: 1.5em; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; }}
figcaption {{ font-weight: bold; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }}
pre {{ background: #f6f6f6; padding: 6px; }}
</style></head><body>
<h1>slabfuzz campaign: {html.escape(name)}</h1>
<p id="status">{"running" if running else "ended"}: {html.escape(numbers)}</p>
{conversion}
<div id="plots">
{plot(recs, "execs_per_sec", "executions a second", "#1f77b4")}
{plot(recs, edges_key, edges_key, "#2ca02c")}
{plot(recs, "corpus", "corpus size", "#ff7f0e")}
</div>
<h2>Crashes</h2>
{table}
{"<h2>Summary</h2><pre id='summary'>" + html.escape(summary) + "</pre>" if summary else ""}
</body></html>
"""


def write_report(out):
    """The page, once, as OUT/dashboard.html (links to the reports beside it)."""
    dest = os.path.join(out, "dashboard.html")
    tmp = dest + ".tmp"
    with open(tmp, "w") as f:
        f.write(render(out))
    os.replace(tmp, dest)
    return dest


def serve(out, host, port):
    """Serves the page live from a thread; returns the server (its port is the one
    bound, when port was 0)."""
    root = os.path.realpath(out)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, code, body, ctype):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            path = urllib.parse.urlparse(self.path).path
            if path in ("/", "/index.html"):
                return self.send(200, render(out, live=True, link_prefix="/crashes/"),
                                 "text/html; charset=utf-8")
            if path == "/stats.jsonl" or path.startswith("/crashes/"):
                full = os.path.realpath(os.path.join(root, urllib.parse.unquote(path[1:])))
                if full.startswith(root + os.sep) and os.path.isfile(full):
                    with open(full, "rb") as f:
                        return self.send(200, f.read(), "text/plain; charset=utf-8")
            self.send(404, "not found\n", "text/plain")

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
