#!/usr/bin/env python3
"""Draws a broadcast comparison as SVG: for each payload size, delivered
deliveries/s and p99 latency against the offered deliveries/s, one line per
system (Switchboard and its peers).

Input: the JSON `switchboard-bench compare ... -- broadcast ...` writes
(default target/bench/compare-broadcast.json), or one `broadcast` report.
Only the Python standard library is used.

    scripts/bench-chart.py target/bench/compare-broadcast.json -o docs/bench-broadcast.svg
"""

import argparse
import json
import math
import sys
from xml.sax.saxutils import escape

# One colour per system, in the order compare runs them.
COLOURS = {
    "switchboard": "#1f77b4",
    "pushpin": "#d62728",
    "socketio": "#2ca02c",
}
FALLBACK_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

PANEL_W, PANEL_H = 420, 280
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 70, 20, 40, 50
LEGEND_H = 30


def load(path):
    """Returns {system: broadcast report} and the p99 limit."""
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    if "reports" in document:
        if document.get("scenario") != "broadcast":
            sys.exit(f"{path} compares {document.get('scenario')!r}, not broadcast")
        # In the order compare ran them (Switchboard first).
        order = document.get("targets") or list(document["reports"])
        reports = {t: document["reports"][t] for t in order if t in document["reports"]}
    elif document.get("scenario") == "broadcast":
        name = (document.get("system") or {}).get("system", "switchboard")
        reports = {name: document}
    else:
        sys.exit(f"{path} is neither a compare file nor a broadcast report")
    if not reports:
        sys.exit(f"{path} holds no report")
    limit = next(iter(reports.values())).get("p99_limit_ms", 100.0)
    return reports, limit


def series(reports):
    """{size: {system: [(offered, delivered, p99_ms)]}} sorted by offered load."""
    out = {}
    for system, report in reports.items():
        for size in report.get("sizes", []):
            points = [
                (
                    step["offered_deliveries_per_second"],
                    step["deliveries_per_second"],
                    step["latency_ms"]["p99"],
                )
                for step in size.get("steps", [])
                if step["offered_deliveries_per_second"] > 0
            ]
            out.setdefault(size["size"], {})[system] = sorted(points)
    return out


def log_ticks(low, high):
    """Powers of ten (and 2x, 5x when the range is short) within [low, high]."""
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if low <= value <= high:
                ticks.append(value)
    if len(ticks) > 8:
        ticks = [t for t in ticks if str(int(t) if t >= 1 else t).lstrip("0.").startswith("1")]
    return ticks


def label(value):
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def panel(x0, y0, title, x_label, y_label, lines, x_range, y_range, limit=None):
    """One log-log panel; `lines` is [(colour, [(x, y)])]."""
    (xl, xh), (yl, yh) = x_range, y_range
    width = PANEL_W - MARGIN_L - MARGIN_R
    height = PANEL_H - MARGIN_T - MARGIN_B
    left, top = x0 + MARGIN_L, y0 + MARGIN_T

    def px(x):
        return left + (math.log10(x) - math.log10(xl)) / (math.log10(xh) - math.log10(xl)) * width

    def py(y):
        return top + height - (math.log10(y) - math.log10(yl)) / (math.log10(yh) - math.log10(yl)) * height

    parts = [
        f'<text x="{left + width / 2}" y="{y0 + 22}" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#333"/>',
    ]
    for t in log_ticks(xl, xh):
        x = px(t)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + height}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + height + 16}" text-anchor="middle">{label(t)}</text>')
    for t in log_ticks(yl, yh):
        y = py(t)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label(t)}</text>')
    parts.append(
        f'<text x="{left + width / 2}" y="{top + height + 36}" text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text transform="translate({x0 + 16},{top + height / 2}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>'
    )
    if limit is not None and yl <= limit <= yh:
        y = py(limit)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="#999" stroke-dasharray="4 3"/>'
        )
        parts.append(f'<text x="{left + width - 4}" y="{y - 4:.1f}" text-anchor="end" fill="#666">p99 limit</text>')
    for colour, points in lines:
        points = [(x, y) for x, y in points if x > 0 and y > 0]
        if not points:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in points:
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
    return parts


def span(values, pad=1.25):
    values = [v for v in values if v > 0]
    if not values:
        return (1, 10)
    return (min(values) / pad, max(values) * pad)


def render(reports, limit):
    data = series(reports)
    systems = list(reports)
    colour = {}
    for i, system in enumerate(systems):
        colour[system] = COLOURS.get(system, FALLBACK_COLOURS[i % len(FALLBACK_COLOURS)])
    sizes = sorted(data)
    width = 2 * PANEL_W
    height = LEGEND_H + PANEL_H * len(sizes)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    x = MARGIN_L
    for system in systems:
        parts.append(f'<rect x="{x}" y="10" width="14" height="10" fill="{colour[system]}"/>')
        parts.append(f'<text x="{x + 18}" y="19">{escape(system)}</text>')
        x += 30 + 8 * len(system)
    for row, size in enumerate(sizes):
        y0 = LEGEND_H + row * PANEL_H
        by_system = data[size]
        offered = [p[0] for pts in by_system.values() for p in pts]
        delivered = [p[1] for pts in by_system.values() for p in pts]
        p99 = [p[2] for pts in by_system.values() for p in pts] + [limit]
        x_range = span(offered)
        parts += panel(
            0,
            y0,
            f"{size} B: deliveries/s delivered",
            "offered deliveries/s",
            "delivered/s",
            [(colour[s], [(o, d) for o, d, _ in by_system.get(s, [])]) for s in systems],
            x_range,
            span(offered + delivered),
        )
        parts += panel(
            PANEL_W,
            y0,
            f"{size} B: p99 latency",
            "offered deliveries/s",
            "p99, ms",
            [(colour[s], [(o, p) for o, _, p in by_system.get(s, [])]) for s in systems],
            x_range,
            span(p99),
            limit,
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "input",
        nargs="?",
        default="target/bench/compare-broadcast.json",
        help="compare JSON or broadcast report (default: %(default)s)",
    )
    parser.add_argument("-o", "--output", default="bench-broadcast.svg", help="SVG to write (default: %(default)s)")
    args = parser.parse_args()
    reports, limit = load(args.input)
    svg = render(reports, limit)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(svg)
    print(f"wrote {args.output}: {', '.join(reports)}")


if __name__ == "__main__":
    main()
