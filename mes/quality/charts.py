"""SVG rendering of control charts.

Pure Python, standard library only: the result is one self-contained ``<svg>`` element that
can be embedded inline in a page (mark it safe in the template; every piece of text in it is
escaped here).  The chart looks right without any stylesheet (inline presentation attributes)
and carries CSS classes so a stylesheet can restyle it:

``frame``, ``axis``, ``series`` (the polyline), ``point`` (every marker), ``flagged`` (markers
of points that break a rule), ``cl``, ``ucl``, ``lcl`` (center line and control limits),
``spec`` (plus ``usl`` / ``lsl``) for specification limits, ``limit-label``, ``legend``.

Flagged points are drawn as a larger diamond instead of a circle, so they stand out without
relying on colour.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence
from html import escape

SERIES_COLOUR = "#1f4e79"  # dark blue
LINE_COLOUR = "#333333"  # dark grey
LIMIT_COLOUR = "#555555"
SPEC_COLOUR = "#6b2d8f"  # dark purple
FLAG_FILL = "#c2410c"  # dark orange
FLAG_STROKE = "#7c2d12"
TEXT_COLOUR = "#222222"
MUTED_COLOUR = "#666666"

MARGIN_LEFT = 64
MARGIN_RIGHT = 112
MARGIN_TOP = 30
MARGIN_BOTTOM = 30
MAX_X_LABELS = 8
MAX_LABEL_CHARS = 20
CHAR_WIDTH = 6.2  # average width of one 11px character
LABEL_GAP = 11.0  # minimum vertical distance between two right-hand limit labels


def _n(value: float) -> str:
    """A coordinate rounded to 1 decimal, without a useless '.0'."""
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def _a(value: object) -> str:
    """Escape an attribute value."""
    return escape(str(value), quote=True)


def _t(value: object) -> str:
    """Escape text content."""
    return escape(str(value), quote=False)


def _nice_step(lo: float, hi: float, target_ticks: int = 6) -> tuple[float, int]:
    """A 1/2/5 x 10^k tick step giving about target_ticks ticks in [lo, hi], and its decimals."""
    base = math.floor(math.log10(hi - lo))
    best: tuple[float, float, int] | None = None  # (badness, step, decimals)
    for exponent in range(base - 2, base + 2):
        for mult in (1, 2, 5):
            step = mult * 10.0**exponent
            ticks = math.floor(hi / step + 1e-9) - math.ceil(lo / step - 1e-9) + 1
            badness = abs(ticks - target_ticks) + (0.5 if ticks < 4 else 0.0)
            if best is None or badness < best[0]:
                best = (badness, step, max(0, -exponent))
    assert best is not None
    return best[1], best[2]


def _fmt(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    return text


def _shorten(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _chart_id(*parts: object) -> str:
    digest = hashlib.blake2s(repr(parts).encode("utf-8"), digest_size=5).hexdigest()
    return f"spc-{digest}"


def _svg_open(width: int, height: int, chart_id: str, classes: str = "spc-chart") -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{_a(classes)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="system-ui, sans-serif" font-size="11">'
    )


def _spread_labels(ys: list[float], low: float, high: float) -> list[float]:
    """Nudge label positions (sorted top-down) so no two are closer than LABEL_GAP."""
    out = list(ys)
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + LABEL_GAP)
    if out and out[-1] > high:
        out[-1] = high
        for i in range(len(out) - 2, -1, -1):
            out[i] = min(out[i], out[i + 1] - LABEL_GAP)
    return [max(low, y) for y in out]


def control_chart_svg(
    *,
    title: str,
    points: Sequence[float],
    center: float | None,
    ucl: float | None,
    lcl: float | None,
    flagged: Collection[int] = (),
    labels: Sequence[str] = (),
    unit: str = "",
    spec: tuple[float | None, float | None] | None = None,
    width: int = 900,
    height: int = 260,
) -> str:
    """Render a control chart as one ``<svg>`` element string.

    ``flagged`` holds indices into ``points`` (others are ignored); ``labels[i]`` names point i
    in its tooltip (default "#i+1"); ``spec`` is ``(lsl, usl)``, either may be None.  Limits
    that are None are not drawn.  Non-finite points are not drawn but still counted.
    """
    width = max(int(width), MARGIN_LEFT + MARGIN_RIGHT + 40)
    height = max(int(height), MARGIN_TOP + MARGIN_BOTTOM + 40)
    values = [float(p) for p in points]
    flagged_set = {i for i in flagged if 0 <= i < len(values)}
    unit_suffix = f" {unit}" if unit else ""
    lsl, usl = spec if spec is not None else (None, None)
    chart_id = _chart_id(title, values, center, ucl, lcl, sorted(flagged_set), unit, spec)

    parts: list[str] = [_svg_open(width, height, chart_id)]
    parts.append(f'<title id="{chart_id}-title">{_t(title)}</title>')

    if not values:
        parts.append(f'<desc id="{chart_id}-desc">No data yet.</desc>')
        parts.append(
            f'<rect class="frame" x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" '
            f'fill="none" stroke="#cccccc"/>'
        )
        parts.append(
            f'<text x="16" y="20" font-weight="bold" fill="{TEXT_COLOUR}">{_t(title)}</text>'
        )
        parts.append(
            f'<text class="empty" x="{_n(width / 2)}" y="{_n(height / 2)}" '
            f'text-anchor="middle" fill="{MUTED_COLOUR}">No data yet</text>'
        )
        parts.append("</svg>")
        return "".join(parts)

    # --- value range -------------------------------------------------------------------
    finite = [v for v in values if math.isfinite(v)]
    lines: list[tuple[str, str, float]] = []  # (css class, label name, value)
    for cls, name, val in (
        ("ucl", "UCL", ucl),
        ("cl", "CL", center),
        ("lcl", "LCL", lcl),
        ("spec usl", "USL", usl),
        ("spec lsl", "LSL", lsl),
    ):
        if val is not None and math.isfinite(float(val)):
            lines.append((cls, name, float(val)))
    everything = finite + [v for _, _, v in lines]
    if everything:
        lo, hi = min(everything), max(everything)
    else:
        lo = hi = 0.0
    if hi - lo <= 1e-12 * max(abs(hi), abs(lo), 1.0):
        pad = max(abs(hi) * 0.1, 1.0)
        lo, hi = lo - pad, hi + pad
    else:
        pad = (hi - lo) * 0.06
        lo, hi = lo - pad, hi + pad
    step, tick_decimals = _nice_step(lo, hi)
    value_decimals = min(max(tick_decimals + 1, 2), 8)

    left, top = MARGIN_LEFT, MARGIN_TOP
    plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = height - MARGIN_TOP - MARGIN_BOTTOM
    right, bottom = left + plot_w, top + plot_h

    def y_of(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * plot_h

    count = len(values)

    def x_of(i: int) -> float:
        if count == 1:
            return left + plot_w / 2
        inset = min(8.0, plot_w / 20)
        return left + inset + i * (plot_w - 2 * inset) / (count - 1)

    # --- accessible description -----------------------------------------------------------
    noun = "point" if count == 1 else "points"
    desc = [f"Control chart with {count} {noun}, {len(flagged_set)} flagged."]
    for _, name, val in lines:
        desc.append(f"{name} {_fmt(val, value_decimals)}{unit_suffix}.")
    parts.append(f'<desc id="{chart_id}-desc">{_t(" ".join(desc))}</desc>')

    # --- frame, title, axis ---------------------------------------------------------------
    parts.append(
        f'<text x="{left}" y="18" font-weight="bold" font-size="13" '
        f'fill="{TEXT_COLOUR}">{_t(title)}</text>'
    )
    if unit:
        parts.append(
            f'<text class="unit" x="{left - 8}" y="{top - 6}" text-anchor="end" '
            f'fill="{MUTED_COLOUR}">{_t(unit)}</text>'
        )
    parts.append(
        f'<rect class="frame" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
        f'fill="#ffffff" stroke="#999999" stroke-width="1"/>'
    )
    parts.append('<g class="axis">')
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    for k in range(first, last + 1):
        tick = k * step
        y = _n(y_of(tick))
        parts.append(
            f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="#e5e5e5" '
            f'stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y}" dy="0.35em" text-anchor="end" '
            f'fill="{MUTED_COLOUR}">{_fmt(tick, tick_decimals)}</text>'
        )

    # x-axis labels: as many evenly spaced points as fit without overlapping
    def x_label(i: int) -> str:
        return _shorten(str(labels[i])) if i < len(labels) else str(i + 1)

    widest = max(len(x_label(i)) for i in range(count)) * CHAR_WIDTH + 16
    fit = max(1, min(MAX_X_LABELS, int(plot_w // widest)))
    every = max(1, math.ceil(count / fit))
    for i in range(0, count, every):
        parts.append(
            f'<text x="{_n(x_of(i))}" y="{bottom + 16}" text-anchor="middle" '
            f'fill="{MUTED_COLOUR}">{_t(x_label(i))}</text>'
        )
    parts.append("</g>")

    # --- limit lines ----------------------------------------------------------------------
    dash = {"cl": None, "ucl": "6 4", "lcl": "6 4"}
    label_ys = _spread_labels(
        [y_of(v) for _, _, v in sorted(lines, key=lambda line: -line[2])], top + 4, bottom - 4
    )
    for (cls, name, val), label_y in zip(
        sorted(lines, key=lambda line: -line[2]), label_ys, strict=True
    ):
        y = _n(y_of(val))
        if cls.startswith("spec"):
            colour, width_attr, dash_attr = SPEC_COLOUR, "1.2", ' stroke-dasharray="2 3"'
        else:
            colour = LINE_COLOUR if cls == "cl" else LIMIT_COLOUR
            width_attr = "1.5" if cls == "cl" else "1.2"
            dash_attr = f' stroke-dasharray="{dash[cls]}"' if dash[cls] else ""
        parts.append(
            f'<line class="{cls}" x1="{left}" y1="{y}" x2="{right}" y2="{y}" '
            f'stroke="{colour}" stroke-width="{width_attr}"{dash_attr}/>'
            f'<text class="limit-label {cls}" x="{right + 6}" y="{_n(label_y)}" dy="0.35em" '
            f'fill="{colour}">{_t(name)} {_fmt(val, value_decimals)}</text>'
        )

    # --- series and markers ---------------------------------------------------------------
    coords = [(i, x_of(i), y_of(v)) for i, v in enumerate(values) if math.isfinite(v)]
    if len(coords) > 1:
        path = " ".join(f"{_n(x)},{_n(y)}" for _, x, y in coords)
        parts.append(
            f'<polyline class="series" points="{path}" fill="none" '
            f'stroke="{SERIES_COLOUR}" stroke-width="1.2" stroke-linejoin="round"/>'
        )
    radius = 3.0 if count <= 150 else 2.0
    size = radius * 2 + 1.5  # half-diagonal of the flagged diamond
    parts.append('<g class="points">')
    for i, x, y in coords:
        label = labels[i] if i < len(labels) else f"#{i + 1}"
        tip = f"{label}: {_fmt(values[i], value_decimals)}{unit_suffix}"
        if i in flagged_set:
            tip += " (flagged)"
            diamond = " ".join(
                f"{_n(px)},{_n(py)}"
                for px, py in ((x, y - size), (x + size, y), (x, y + size), (x - size, y))
            )
            parts.append(
                f'<polygon class="point flagged" points="{diamond}" fill="{FLAG_FILL}" '
                f'stroke="{FLAG_STROKE}" stroke-width="1"><title>{_t(tip)}</title></polygon>'
            )
        else:
            parts.append(
                f'<circle class="point" cx="{_n(x)}" cy="{_n(y)}" r="{_n(radius)}" '
                f'fill="{SERIES_COLOUR}"><title>{_t(tip)}</title></circle>'
            )
    parts.append("</g>")

    # --- legend (shape, not colour) -------------------------------------------------------
    if flagged_set:
        lx, ly = right - 150, 14
        parts.append(
            f'<g class="legend"><polygon points="{_n(lx)},{ly - 6} {_n(lx + 6)},{ly} '
            f'{_n(lx)},{ly + 6} {_n(lx - 6)},{ly}" fill="{FLAG_FILL}" stroke="{FLAG_STROKE}"/>'
            f'<text x="{_n(lx + 10)}" y="{ly}" dy="0.35em" fill="{TEXT_COLOUR}">'
            f"{len(flagged_set)} flagged (rule violation)</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
