#!/usr/bin/env python3
"""Turns the wrk runs of bench/run.sh into a Markdown table and an SVG chart (stdlib only).

Input: a TSV of `repeat<TAB>concurrency<TAB>target<TAB>wrk-output-file`, one line per wrk run.
Per target and concurrency it reports the median over the repeats of requests/s and of the
p50/p90/p99 latencies, and the median of the per-repeat ratios to the ceiling (each ratio is taken
within one repeat, where both ran under the same machine load, before the median is taken).
"""

import argparse
import datetime
import html
import os
import platform
import re
import socket
import statistics
import sys
from collections import defaultdict

LATENCY_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]


def main():
    args = parse_args()
    runs = read_runs(args.runs)
    if not runs:
        sys.exit(f"{args.runs}: no runs")
    targets = list(dict.fromkeys(r["target"] for r in runs))
    concurrencies = sorted({r["c"] for r in runs})
    if args.ceiling not in targets:
        sys.exit(f"ceiling {args.ceiling!r} is not among the targets {targets}")
    rows = summarize(runs, targets, concurrencies, args.ceiling)
    pairs = []
    for pair in args.pair:
        a, _, b = pair.partition(":")
        if a in targets and b in targets:
            pairs += head_to_head(runs, a, b, concurrencies)
    with open(args.markdown, "w", encoding="utf-8") as f:
        f.write(markdown(args, runs, rows, targets, concurrencies, pairs))
    with open(args.svg, "w", encoding="utf-8") as f:
        f.write(svg(rows, targets, concurrencies, args.quick == "true"))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", help="TSV of repeat, concurrency, target, wrk output file")
    p.add_argument("--ceiling", required=True, help="the target every ratio is taken against")
    p.add_argument("--markdown", required=True)
    p.add_argument("--svg", required=True)
    p.add_argument("--duration", default="?")
    p.add_argument("--repeats", default="?")
    p.add_argument("--quick", default="false")
    p.add_argument("--commit", default="?")
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--note", action="append", default=[], help="a line for the Notes section")
    p.add_argument(
        "--pair",
        action="append",
        default=[],
        help="A:B, a head-to-head of two targets: A's req/s and p99 over B's, per repeat, then the median",
    )
    return p.parse_args()


def read_runs(path):
    runs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            repeat, c, target, out = line.rstrip("\n").split("\t")
            with open(out, encoding="utf-8") as wrk_output:
                result = parse_wrk(wrk_output.read(), out)
            runs.append({"repeat": int(repeat), "c": int(c), "target": target, **result})
    return runs


def parse_wrk(text, where):
    """The numbers of one `wrk --latency` run; latencies in microseconds."""

    def number(pattern):
        m = re.search(pattern, text, re.MULTILINE)
        if not m:
            sys.exit(f"{where}: no match for {pattern!r} in wrk output:\n{text}")
        return m

    result = {"rps": float(number(r"^Requests/sec:\s+([\d.]+)").group(1))}
    for pct in (50, 90, 99):
        m = number(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m|h)\s*$")
        result[f"p{pct}"] = float(m.group(1)) * LATENCY_UNITS_US[m.group(2)]
    result["requests"] = int(number(r"^\s+(\d+) requests in").group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    result["errors"] = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return result


def summarize(runs, targets, concurrencies, ceiling):
    by_key = defaultdict(list)
    for r in runs:
        by_key[(r["target"], r["c"])].append(r)
    ceiling_runs = {(r["c"], r["repeat"]): r for r in runs if r["target"] == ceiling}
    rows = []
    for c in concurrencies:
        for target in targets:
            rs = by_key.get((target, c), [])
            if not rs:
                continue
            row = {"target": target, "c": c, "n": len(rs), "errors": sum(r["errors"] for r in rs)}
            for key in ("rps", "p50", "p90", "p99"):
                row[key] = statistics.median(r[key] for r in rs)
            pairs = [(r, ceiling_runs[(c, r["repeat"])]) for r in rs if (c, r["repeat"]) in ceiling_runs]
            row["rps_ratio"] = median_or_none([r["rps"] / ceil["rps"] for r, ceil in pairs if ceil["rps"]])
            row["p99_ratio"] = median_or_none([r["p99"] / ceil["p99"] for r, ceil in pairs if ceil["p99"]])
            rows.append(row)
    return rows


def head_to_head(runs, a, b, concurrencies):
    """A's req/s and p99 over B's, each ratio within one repeat, then the median."""
    by_key = {(r["target"], r["c"], r["repeat"]): r for r in runs}
    rows = []
    for c in concurrencies:
        pairs = [
            (by_key[(a, c, rep)], by_key[(b, c, rep)])
            for (t, cc, rep) in by_key
            if t == a and cc == c and (b, c, rep) in by_key
        ]
        if not pairs:
            continue
        rows.append({
            "a": a,
            "b": b,
            "c": c,
            "rps_ratio": median_or_none([x["rps"] / y["rps"] for x, y in pairs if y["rps"]]),
            "p99_ratio": median_or_none([x["p99"] / y["p99"] for x, y in pairs if y["p99"]]),
            "per_repeat": [x["rps"] / y["rps"] for x, y in sorted(pairs, key=lambda p: p[0]["repeat"]) if y["rps"]],
        })
    return rows


def median_or_none(values):
    return statistics.median(values) if values else None


def fmt_latency(us):
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"


def fmt_ratio(x):
    return "—" if x is None else f"{x:.3f}"


def markdown(args, runs, rows, targets, concurrencies, pairs):
    now = datetime.datetime.now(datetime.timezone.utc)
    host = socket.gethostname()
    lines = [f"# Load benchmark: {now:%Y-%m-%d %H:%M} UTC on {host}", ""]
    if args.quick == "true":
        lines += ["**Quick smoke run (`--quick`): proves the suite runs; the numbers are not results.**", ""]
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += [
        f"- commit: `{args.commit}`",
        f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs, Linux {platform.release()}; "
        f"load average at the end: {load}",
        f"- client: {args.wrk} on 127.0.0.1, {args.duration} s per run, {args.repeats} repeat(s), "
        f"targets alternated within each repeat; concurrency {', '.join(map(str, concurrencies))}",
        f"- ceiling: `{args.ceiling}`; each ratio is taken within one repeat, then the median over repeats",
        "",
        "| target | conc. | req/s | p50 | p90 | p99 | req/s ÷ ceiling | p99 ÷ ceiling | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['c']} | {r['rps']:,.0f} | {fmt_latency(r['p50'])} | {fmt_latency(r['p90'])} "
            f"| {fmt_latency(r['p99'])} | {fmt_ratio(r['rps_ratio'])} | {fmt_ratio(r['p99_ratio'])} | {r['errors']} |"
        )
    if pairs:
        lines += [
            "",
            "| head to head | conc. | req/s ratio | p99 ratio | req/s ratio per repeat |",
            "|---|---:|---:|---:|---|",
        ]
        for p in pairs:
            per = " / ".join(f"{x:.2f}" for x in p["per_repeat"])
            lines.append(
                f"| `{p['a']}` ÷ `{p['b']}` | {p['c']} | {fmt_ratio(p['rps_ratio'])} | {fmt_ratio(p['p99_ratio'])} | {per} |"
            )
    lines += ["", f"![requests/s and p99 per target and concurrency]({os.path.basename(args.svg)})", ""]
    notes = list(args.note)
    if any(r["errors"] for r in rows):
        notes.append("Some runs had non-2xx responses or socket errors (the `errors` column): read those rows with care.")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += [
        "## Every run",
        "",
        "| repeat | conc. | target | req/s | p50 | p90 | p99 | requests | errors |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(runs, key=lambda r: (r["repeat"], r["c"], targets.index(r["target"]))):
        lines.append(
            f"| {r['repeat']} | {r['c']} | {r['target']} | {r['rps']:,.0f} | {fmt_latency(r['p50'])} "
            f"| {fmt_latency(r['p90'])} | {fmt_latency(r['p99'])} | {r['requests']} | {r['errors']} |"
        )
    return "\n".join(lines) + "\n"


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def svg(rows, targets, concurrencies, quick):
    """Small multiples: requests/s (top row) and p99 (bottom row), one panel per concurrency."""
    panel_w, panel_h, left, top, gap = 300, 200, 70, 70, 50
    width = left + len(concurrencies) * (panel_w + gap)
    height = top + 2 * (panel_h + 60) + 10
    by_key = {(r["target"], r["c"]): r for r in rows}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">Hello world: requests/s and p99 latency'
        f'{" (quick smoke run: not results)" if quick else ""}</text>',
    ]
    for i, target in enumerate(targets):
        x = left + i * 150
        out.append(f'<rect x="{x}" y="32" width="12" height="12" fill="{COLORS[i % len(COLORS)]}"/>')
        out.append(f'<text x="{x + 16}" y="42">{html.escape(target)}</text>')
    metrics = [("rps", "requests/s", lambda v: f"{v:,.0f}"), ("p99", "p99 latency (µs)", lambda v: f"{v:,.0f}")]
    for row_i, (key, label, fmt) in enumerate(metrics):
        y0 = top + row_i * (panel_h + 60)
        for col, c in enumerate(concurrencies):
            x0 = left + col * (panel_w + gap)
            values = [(t, by_key[(t, c)][key]) for t in targets if (t, c) in by_key]
            out += panel(x0, y0, panel_w, panel_h, f"{label}, concurrency {c}", values, targets, fmt)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def panel(x0, y0, w, h, title, values, targets, fmt):
    top = max((v for _, v in values), default=1.0) * 1.15 or 1.0
    out = [f'<text x="{x0}" y="{y0 + 12}" font-weight="bold">{html.escape(title)}</text>']
    plot_y, plot_h = y0 + 20, h - 20
    for k in range(5):
        v = top * k / 4
        y = plot_y + plot_h - plot_h * k / 4
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#666">{fmt(v)}</text>')
    slot = w / max(len(targets), 1)
    for t, v in values:
        i = targets.index(t)
        bar_h = plot_h * v / top
        x = x0 + i * slot + slot * 0.15
        y = plot_y + plot_h - bar_h
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar_h:.1f}" '
            f'fill="{COLORS[i % len(COLORS)]}"><title>{html.escape(t)}: {fmt(v)}</title></rect>'
        )
        out.append(f'<text x="{x + slot * 0.35:.1f}" y="{y - 3:.1f}" text-anchor="middle">{fmt(v)}</text>')
    out.append(f'<line x1="{x0}" y1="{plot_y + plot_h}" x2="{x0 + w}" y2="{plot_y + plot_h}" stroke="#333"/>')
    return out


if __name__ == "__main__":
    main()
