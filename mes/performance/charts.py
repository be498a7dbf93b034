"""Server-rendered SVG charts for the supervisors' screens: bars (losses, Pareto with its
cumulative line), a trend line, a machine's state timeline and the schedule's Gantt.

Pure Python (no ORM, no JavaScript, no CDN): each function returns one self-contained
``<svg>`` element to embed inline (every text in it is escaped here). Colour follows the
screens' rule: grey and calm, strong colour only for what is abnormal, and never colour
alone: bars carry their numbers, timeline bands their state's word in a tooltip and a
pattern for no data, and the Gantt marks late work with a symbol as well as a colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

TEXT = "#1f2528"
MUTED = "#5f6b72"
GRID = "#d5dbde"
BAR = "#607d8b"
LINE = "#1d4f91"
STATE_FILL = {
    "running": "#9fbfa6",
    "idle": "#d8dde0",
    "setup": "#a9b8c9",
    "down": "#b3261e",
    "offline": "url(#nodata)",
    "unknown": "url(#nodata)",
    "off": "#eef0f1",
}


def _a(value: object) -> str:
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _text(x: float, y: float, text: str, *, anchor: str = "start", fill: str = TEXT) -> str:
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" fill="{fill}">'
        f"{escape(str(text), quote=False)}</text>"
    )


def _line(
    x1: float, x2: float, y1: float, y2: float, *, stroke: str = GRID, width: float = 1
) -> str:
    return (
        f'<line x1="{_n(x1)}" x2="{_n(x2)}" y1="{_n(y1)}" y2="{_n(y2)}" stroke="{stroke}" '
        f'stroke-width="{_n(width)}"/>'
    )


def _polyline(points: Sequence[str]) -> str:
    return f'<polyline points="{" ".join(points)}" fill="none" stroke="{LINE}" stroke-width="2"/>'


def _off(x: float, y: float, w: float, h: float, fill: str) -> str:
    return (
        f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" fill="{fill}">'
        "<title>not working time</title></rect>"
    )


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as shown
    href: str = ""
    strong: bool = False  # abnormal: drawn in the alarm colour


def bars(items: Sequence[Bar], *, width: int = 760, cumulative: bool = False) -> str:
    """Horizontal bars, largest first as given; with ``cumulative``, a Pareto: the running
    share of the total is written beside each bar and drawn as a line."""
    row, label_w, value_w = 28, 230, 120
    height = max(1, len(items)) * row + 16
    top = max((i.value for i in items), default=0) or 1
    total = sum(i.value for i in items) or 1
    plot = width - label_w - value_w
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bars" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" font-family="system-ui, sans-serif" '
        f'font-size="13">'
    ]
    running = 0.0
    points = []
    for i, item in enumerate(items):
        y = 8 + i * row
        w = max(0.0, item.value / top * plot)
        label = _a(item.label if len(item.label) <= 32 else item.label[:31] + "…")
        text = (
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" fill="{TEXT}">{label}</text>'
        )
        if item.href:
            text = f'<a href="{_a(item.href)}">{text}</a>'
        parts.append(text)
        fill = "#b3261e" if item.strong else BAR
        parts.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{_n(w)}" height="{row - 10}" fill="{fill}">'
            f"<title>{_a(item.label)}: {_a(item.text)}</title></rect>"
        )
        running += item.value
        share = running / total
        extra = f" · {round(share * 100)} %" if cumulative else ""
        parts.append(_text(label_w + w + 6, y + 17, f"{item.text}{extra}", fill=MUTED))
        points.append((label_w + share * plot, y + row / 2))
    if cumulative and points:
        path = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="2" '
            f'stroke-dasharray="4 3" class="cumulative"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def trend(
    points: Sequence[tuple[str, float | None]], *, width: int = 760, height: int = 220
) -> str:
    """A ratio (0..1) over time: a line with a marker and its value at each point; a gap
    where it is undefined."""
    left, right, top, bottom = 44, 12, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart trend" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" font-family="system-ui, sans-serif" '
        f'font-size="12">'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        y = top + plot_h * (1 - tick)
        parts.append(_line(left, width - right, y, y))
        parts.append(_text(left - 6, y + 4, f"{round(tick * 100)} %", anchor="end", fill=MUTED))
    n = len(points)
    step = plot_w / max(1, n - 1) if n > 1 else 0
    segment: list[str] = []
    every = max(1, n // 10)
    for i, (label, value) in enumerate(points):
        x = left + (i * step if n > 1 else plot_w / 2)
        if i % every == 0 or i == n - 1:
            parts.append(_text(x, height - 12, label, anchor="middle", fill=MUTED))
        if value is None:
            if len(segment) > 1:
                parts.append(_polyline(segment))
            segment = []
            continue
        y = top + plot_h * (1 - max(0.0, min(1.0, value)))
        segment.append(f"{_n(x)},{_n(y)}")
        parts.append(
            f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3.5" fill="{LINE}"><title>{_a(label)}: '
            f"{round(value * 100)} %</title></circle>"
        )
    if len(segment) > 1:
        parts.append(_polyline(segment))
    parts.append("</svg>")
    return "".join(parts)


def _defs() -> str:
    return (
        '<defs><pattern id="nodata" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" fill="#f4e9f7"/>'
        '<rect width="3" height="8" fill="#6a1b9a"/></pattern></defs>'
    )


def _x(moment: datetime, start: datetime, end: datetime, left: float, plot_w: float) -> float:
    span = (end - start).total_seconds() or 1
    return left + max(0.0, min(1.0, (moment - start).total_seconds() / span)) * plot_w


def _hour_ticks(start: datetime, end: datetime, zone, every_hours: int) -> list[datetime]:
    local = start.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    ticks = []
    while local < end:
        if local >= start and local.hour % every_hours == 0:
            ticks.append(local)
        local = (local + timedelta(hours=1)).astimezone(zone)
    return ticks


def timeline(
    spans: Sequence[tuple[str, str, datetime, datetime]],
    *,
    start: datetime,
    end: datetime,
    off: Sequence[tuple[datetime, datetime]],
    zone,
    width: int = 1000,
) -> str:
    """One machine's states across a day: ``spans`` are (state, label, from, to); ``off``
    is non-working time (shaded above the band)."""
    left, right, height = 10, 10, 86
    plot_w = width - left - right
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart timeline" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" font-family="system-ui, sans-serif" '
        f'font-size="12">',
        _defs(),
    ]
    for a, b in off:
        x1, x2 = _x(a, start, end, left, plot_w), _x(b, start, end, left, plot_w)
        parts.append(_off(x1, 4, x2 - x1, 8, "#c9d0d4"))
    for state, label, a, b in spans:
        x1, x2 = _x(a, start, end, left, plot_w), _x(b, start, end, left, plot_w)
        fill = STATE_FILL.get(state, "#d8dde0")
        parts.append(
            f'<rect x="{_n(x1)}" y="16" width="{_n(max(0.5, x2 - x1))}" height="40" fill="{fill}" '
            f'class="st-{_a(state)}"><title>{_a(label)}: {a.astimezone(zone):%H:%M:%S} to '
            f"{b.astimezone(zone):%H:%M:%S}</title></rect>"
        )
    for tick in _hour_ticks(start, end, zone, 2):
        x = _x(tick, start, end, left, plot_w)
        parts.append(_line(x, x, 56, 62, stroke=MUTED))
        parts.append(_text(x, 76, f"{tick:%H:%M}", anchor="middle", fill=MUTED))
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class GanttBar:
    start: datetime
    end: datetime
    label: str
    title: str
    late: bool = False
    rush: bool = False
    running: bool = False


def gantt(
    lanes: Sequence[tuple[str, Sequence[GanttBar]]],
    *,
    start: datetime,
    end: datetime,
    off: Sequence[tuple[datetime, datetime]],
    zone,
    now: datetime,
    width: int = 1200,
) -> str:
    """The live schedule per machine: a lane each, bars for planned operations (late work
    with "◆" and an amber outline, rush with "⚑"), non-working time shaded, now a line."""
    left, right, lane_h, head = 120, 10, 30, 22
    plot_w = width - left - right
    height = head + max(1, len(lanes)) * lane_h + 6
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart gantt" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" font-family="system-ui, sans-serif" '
        f'font-size="12">'
    ]
    for a, b in off:
        x1, x2 = _x(a, start, end, left, plot_w), _x(b, start, end, left, plot_w)
        parts.append(_off(x1, head, x2 - x1, height - head, "#eceff1"))
    hours = max(1, int((end - start).total_seconds() // 3600))
    for tick in _hour_ticks(start, end, zone, max(1, hours // 12)):
        x = _x(tick, start, end, left, plot_w)
        parts.append(_line(x, x, head - 4, height))
        label = f"{tick:%a %H:%M}" if tick.hour == 0 else f"{tick:%H:%M}"
        parts.append(_text(x, 14, label, anchor="middle", fill=MUTED))
    for i, (name, items) in enumerate(lanes):
        y = head + i * lane_h
        parts.append(_text(left - 8, y + 19, name, anchor="end"))
        parts.append(_line(left, width - right, y + lane_h, y + lane_h))
        for bar in items:
            if bar.end <= start or bar.start >= end:
                continue
            x1, x2 = _x(bar.start, start, end, left, plot_w), _x(bar.end, start, end, left, plot_w)
            fill = "#8fa4b0" if bar.running else "#b7c4cb"
            stroke = ' stroke="#a15c00" stroke-width="3"' if bar.late else ""
            marks = ("◆ " if bar.late else "") + ("⚑ " if bar.rush else "")
            w = max(1.0, x2 - x1)
            parts.append(
                f'<rect x="{_n(x1)}" y="{y + 4}" width="{_n(w)}" height="{lane_h - 8}" rx="3" '
                f'fill="{fill}"{stroke}><title>{_a(bar.title)}</title></rect>'
            )
            if w > 40:
                parts.append(_text(x1 + 4, y + 19, (marks + bar.label)[: int(w / 7)]))
    x = _x(now, start, end, left, plot_w)
    parts.append(_line(x, x, head - 4, height, stroke=LINE, width=2))
    parts.append("</svg>")
    return "".join(parts)
