#!/usr/bin/env python3
"""Draws a quarry profile (the Chrome trace of `quarry --profile FILE.json`)
as a picture: one lane per worker thread, one slice per task, colored by
stage, on a time axis; idle time is the gaps. Perfetto shows the same file
interactively; this is for documents.

    python3 docs/trace_picture.py trace.json docs/profile.svg [--query N] [--title TEXT]
    rsvg-convert -w 1600 docs/profile.svg -o docs/profile.png

Only the standard library is needed.
"""

import argparse
import html
import json
import sys

PALETTE = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
]
WIDTH = 1200
LEFT = 110          # lane names
RIGHT = 90          # busy share per lane
TOP = 64
LANE = 34
GAP = 8


def nice_step(span_ms, ticks=8):
    raw = span_ms / ticks
    step = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    for factor in (1, 2, 5, 10):
        if step * factor >= raw:
            return step * factor
    return step * 10


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace")
    parser.add_argument("svg")
    parser.add_argument("--query", type=int, default=None,
                        help="which query of the trace (1-based; default: the last)")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()

    with open(args.trace) as f:
        events = json.load(f)["traceEvents"]
    queries = [e for e in events if e.get("cat") == "query"]
    if not queries:
        sys.exit("no query in the trace")
    n = args.query if args.query is not None else len(queries)
    if not 1 <= n <= len(queries):
        sys.exit(f"the trace has {len(queries)} queries, not {n}")
    query = queries[n - 1]
    tasks = [e for e in events if e.get("cat") == "task" and e["args"]["query"] == n]
    names = {e["tid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
    lanes = sorted({t["tid"] for t in tasks} | {tid for tid in names if tid > 0})
    t0, span = query["ts"], max(query["dur"], 1.0)
    stages = sorted({t["args"]["stage"] for t in tasks})
    color = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(stages)}

    plot = WIDTH - LEFT - RIGHT
    x = lambda us: LEFT + (us - t0) / span * plot
    height = TOP + len(lanes) * (LANE + GAP) + 70
    out = []
    w = out.append
    w(f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
      f'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">')
    w(f'<rect width="{WIDTH}" height="{height}" fill="white"/>')
    title = args.title or query["args"]["sql"][:110]
    w(f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{html.escape(title)}</text>')
    a = query["args"]
    w(f'<text x="{LEFT}" y="42" fill="#555">{a["tasks"]} tasks on {len(lanes)} workers in '
      f'{span / 1000:.0f} ms; {a["rows_read"]:,} rows read. One lane per worker, one slice '
      f'per task, colored by stage; gaps are idle time.</text>')

    # Time grid.
    step = nice_step(span / 1000)
    ms = 0.0
    bottom = TOP + len(lanes) * (LANE + GAP)
    while ms <= span / 1000 + 1e-9:
        gx = x(t0 + ms * 1000)
        w(f'<line x1="{gx:.1f}" y1="{TOP - 4}" x2="{gx:.1f}" y2="{bottom}" stroke="#ddd"/>')
        w(f'<text x="{gx:.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">'
          f'{ms:g} ms</text>')
        ms += step

    for i, tid in enumerate(lanes):
        y = TOP + i * (LANE + GAP)
        w(f'<rect x="{LEFT}" y="{y}" width="{plot}" height="{LANE}" fill="#f6f6f6"/>')
        w(f'<text x="{LEFT - 8}" y="{y + LANE / 2 + 4}" text-anchor="end">'
          f'{html.escape(names.get(tid, f"lane {tid}"))}</text>')
        busy = 0.0
        for t in (t for t in tasks if t["tid"] == tid):
            busy += t["dur"]
            x0, x1 = x(t["ts"]), x(t["ts"] + t["dur"])
            s = t["args"]["stage"]
            tip = (f'stage {s} partition {t["args"]["partition"]}: '
                   f'{t["dur"] / 1000:.1f} ms, {t["args"]["rows_in"]:,} rows in')
            w(f'<rect x="{x0:.2f}" y="{y + 2}" width="{max(x1 - x0, 0.6):.2f}" '
              f'height="{LANE - 4}" fill="{color[s]}" stroke="white" stroke-width="0.6">'
              f'<title>{html.escape(tip)}</title></rect>')
            if x1 - x0 > 26:
                w(f'<text x="{(x0 + x1) / 2:.1f}" y="{y + LANE / 2 + 4}" text-anchor="middle" '
                  f'fill="white" font-size="10">s{s}</text>')
        w(f'<text x="{WIDTH - RIGHT + 8}" y="{y + LANE / 2 + 4}" fill="#555">'
          f'{busy / span * 100:.0f}% busy</text>')

    # Legend.
    lx, ly = LEFT, bottom + 40
    for s in stages:
        w(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{color[s]}"/>')
        w(f'<text x="{lx + 16}" y="{ly}">stage {s}</text>')
        lx += 80
    w("</svg>")
    with open(args.svg, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
