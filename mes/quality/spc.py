"""Statistical process control (SPC): control limits, Western Electric rules, capability.

Pure Python, standard library only: no Django, no ORM.  Callers convert their stored values
(Decimal text) to ``float`` before calling in; nothing here rounds.

Control limits
--------------
Measurements arrive as *subgroups*: consecutive values taken together.  When every subgroup
holds a single value the chart is an *individuals and moving range* (I-MR) chart:

* the center line is the mean of the individuals;
* the moving ranges are the absolute differences between consecutive individuals, and MRbar
  is their mean;
* UCL / LCL = center +/- 2.66 * MRbar (2.66 = 3 / d2 with d2 = 1.128 for ranges of two);
* the within sigma estimate is MRbar / 1.128;
* the moving range chart has center MRbar, UCL 3.267 * MRbar and LCL 0.

When subgroups hold 2 to 10 values the chart is an *X-bar and R* chart:

* each subgroup is plotted as its mean; the center line X-bar-bar is the mean of the means;
* R is the range (max - min) of a subgroup and Rbar the mean of the ranges;
* UCL / LCL = X-bar-bar +/- A2(n) * Rbar, the within sigma is Rbar / d2(n);
* the range chart has center Rbar, UCL D4(n) * Rbar and LCL D3(n) * Rbar.

A2, D3, D4 and d2 are the usual AIAG / ASTM table constants for the subgroup size n.  When the
subgroups have different sizes, only those of the most common size take part in computing the
limits (on a tie the larger size wins).

Western Electric rules
----------------------
The plotted points are judged against the center line and sigma of the *plotted* statistic,
taken as (UCL - center) / 3.  "Beyond" always means strictly beyond; a point exactly on a zone
boundary is not beyond it and a point exactly on the center line is on neither side.

1. One point beyond 3 sigma, on either side.
2. Two out of three consecutive points beyond 2 sigma on the same side.
3. Four out of five consecutive points beyond 1 sigma on the same side.
4. Eight consecutive points on the same side of the center line.

A violation is reported at the index of the last point of the window that completes the
pattern, so a run of ten points above the center gives rule 4 at the 8th, 9th and 10th
points.  For rules 2 and 3 the reported point must itself be beyond the zone on that side (the
flag always sits on a point that is out); the window is the reported point and the points just
before it (fewer at the very start of the series, so two opening points beyond 2 sigma are
flagged as soon as the second one arrives).  Each (point, rule) pair is reported at most once.

Capability
----------
Cp = (USL - LSL) / (6 sigma) and Cpk = min(USL - mean, mean - LSL) / (3 sigma), with sigma the
within sigma from the control limits.  With only one specification limit Cp is undefined
(None) and Cpk uses the side that is given.  With no limits or a zero sigma they are None.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from statistics import fmean
from typing import Any

IMR = "imr"
XBAR_R = "xbar_r"
KINDS = (IMR, XBAR_R)

#: I-MR constants: ranges of two consecutive values.
E2 = 2.66
D4_IMR = 3.267
D2_IMR = 1.128

#: X-bar R constants per subgroup size n (2..10): A2, D3, D4, d2.
A2: dict[int, float] = {
    2: 1.880,
    3: 1.023,
    4: 0.729,
    5: 0.577,
    6: 0.483,
    7: 0.419,
    8: 0.373,
    9: 0.337,
    10: 0.308,
}
D3: dict[int, float] = {
    2: 0.0,
    3: 0.0,
    4: 0.0,
    5: 0.0,
    6: 0.0,
    7: 0.076,
    8: 0.136,
    9: 0.184,
    10: 0.223,
}
D4: dict[int, float] = {
    2: 3.267,
    3: 2.574,
    4: 2.282,
    5: 2.114,
    6: 2.004,
    7: 1.924,
    8: 1.864,
    9: 1.816,
    10: 1.777,
}
D2: dict[int, float] = {
    2: 1.128,
    3: 1.693,
    4: 2.059,
    5: 2.326,
    6: 2.534,
    7: 2.704,
    8: 2.847,
    9: 2.970,
    10: 3.078,
}
MIN_SUBGROUP_SIZE = 2
MAX_SUBGROUP_SIZE = 10


@dataclass(frozen=True)
class Limits:
    """Control limits of one chart (I-MR or X-bar R)."""

    kind: str  # "imr" or "xbar_r"
    subgroup_size: int  # 1 for imr
    center: float  # X-bar-bar, or mean of the individuals
    ucl: float
    lcl: float
    sigma: float  # within sigma: MRbar / 1.128 (imr) or Rbar / d2(n) (xbar_r)
    range_center: float  # MRbar or Rbar
    range_ucl: float  # D4 * Rbar (imr: 3.267 * MRbar)
    range_lcl: float  # D3 * Rbar (imr: 0)
    n: int  # number of subgroups (points) the limits were computed from

    @property
    def point_sigma(self) -> float:
        """Sigma of the plotted statistic, (UCL - center) / 3."""
        return (self.ucl - self.center) / 3


@dataclass(frozen=True)
class Violation:
    """One Western Electric rule broken at one point."""

    index: int  # index of the point that completes the pattern
    rule: int  # 1..4
    message: str


@dataclass(frozen=True)
class Capability:
    """Process capability of a set of individual values."""

    n: int
    mean: float
    sigma_within: float
    cp: float | None
    cpk: float | None


@dataclass(frozen=True)
class Analysis:
    """Everything a control chart page needs."""

    limits: Limits | None
    baseline: bool
    points: list[float]
    ranges: list[float | None]
    violations: list[Violation]
    capability: Capability | None


def _finite(values: Sequence[float], what: str = "value") -> list[float]:
    out = [float(v) for v in values]
    for v in out:
        if not math.isfinite(v):
            raise ValueError(f"{what} {v!r} is not a finite number")
    return out


def moving_ranges(values: Sequence[float]) -> list[float]:
    """Absolute differences between consecutive values (one fewer than the values)."""
    return [abs(b - a) for a, b in pairwise(values)]


def individuals_limits(values: Sequence[float]) -> Limits:
    """I-MR limits from individual values; ValueError with fewer than 2 values."""
    xs = _finite(values)
    if len(xs) < 2:
        raise ValueError("an individuals chart needs at least 2 values")
    center = fmean(xs)
    mr_bar = fmean(moving_ranges(xs))
    return Limits(
        kind=IMR,
        subgroup_size=1,
        center=center,
        ucl=center + E2 * mr_bar,
        lcl=center - E2 * mr_bar,
        sigma=mr_bar / D2_IMR,
        range_center=mr_bar,
        range_ucl=D4_IMR * mr_bar,
        range_lcl=0.0,
        n=len(xs),
    )


def xbar_r_limits(subgroups: Sequence[Sequence[float]]) -> Limits:
    """X-bar R limits; all subgroups the same size 2..10 and at least 2 of them, else ValueError."""
    groups = [_finite(g) for g in subgroups]
    if len(groups) < 2:
        raise ValueError("an X-bar R chart needs at least 2 subgroups")
    sizes = {len(g) for g in groups}
    if len(sizes) != 1:
        raise ValueError(f"subgroups must all have the same size, got sizes {sorted(sizes)}")
    size = sizes.pop()
    if not MIN_SUBGROUP_SIZE <= size <= MAX_SUBGROUP_SIZE:
        raise ValueError(
            f"subgroup size must be {MIN_SUBGROUP_SIZE}..{MAX_SUBGROUP_SIZE}, got {size}"
        )
    center = fmean(fmean(g) for g in groups)
    r_bar = fmean(max(g) - min(g) for g in groups)
    return Limits(
        kind=XBAR_R,
        subgroup_size=size,
        center=center,
        ucl=center + A2[size] * r_bar,
        lcl=center - A2[size] * r_bar,
        sigma=r_bar / D2[size],
        range_center=r_bar,
        range_ucl=D4[size] * r_bar,
        range_lcl=D3[size] * r_bar,
        n=len(groups),
    )


def compute_limits(subgroups: Sequence[Sequence[float]]) -> Limits:
    """Limits from the data: I-MR when the subgroups hold single values, else X-bar R.

    Only subgroups of the most common size are used (on a tie the larger size wins), so a
    stray subgroup of a different size neither breaks nor skews the computation.  When the
    most common size is 1 (in particular when every subgroup has size 1) the chart is I-MR
    over those individuals.  ValueError when an empty subgroup is given or there is too little
    data (see individuals_limits / xbar_r_limits).
    """
    groups = [list(g) for g in subgroups]
    if any(len(g) == 0 for g in groups):
        raise ValueError("empty subgroup")
    if not groups:
        raise ValueError("no data")
    counts = Counter(len(g) for g in groups)
    size = max(counts, key=lambda s: (counts[s], s))
    kept = [g for g in groups if len(g) == size]
    if size == 1:
        return individuals_limits([g[0] for g in kept])
    return xbar_r_limits(kept)


def _side(x: float, center: float, distance: float) -> int:
    """+1 when x is strictly above center + distance, -1 strictly below center - distance."""
    if x > center + distance:
        return 1
    if x < center - distance:
        return -1
    return 0


def _where(side: int) -> str:
    return "above" if side > 0 else "below"


def western_electric(points: Sequence[float], center: float, sigma: float) -> list[Violation]:
    """Western Electric rules 1-4; violations sorted by (index, rule). [] when sigma <= 0."""
    if not (math.isfinite(sigma) and math.isfinite(center)) or sigma <= 0:
        return []
    xs = [float(p) for p in points]
    beyond3 = [_side(x, center, 3 * sigma) for x in xs]
    beyond2 = [_side(x, center, 2 * sigma) for x in xs]
    beyond1 = [_side(x, center, sigma) for x in xs]
    side0 = [_side(x, center, 0.0) for x in xs]
    found: list[Violation] = []
    for i in range(len(xs)):
        if beyond3[i]:
            found.append(
                Violation(
                    i, 1, f"Rule 1: 1 point beyond 3 sigma {_where(beyond3[i])} the center line"
                )
            )
        s = beyond2[i]
        if s and sum(1 for t in beyond2[max(0, i - 2) : i + 1] if t == s) >= 2:
            found.append(
                Violation(i, 2, f"Rule 2: 2 of 3 points beyond 2 sigma {_where(s)} the center line")
            )
        s = beyond1[i]
        if s and sum(1 for t in beyond1[max(0, i - 4) : i + 1] if t == s) >= 4:
            found.append(
                Violation(i, 3, f"Rule 3: 4 of 5 points beyond 1 sigma {_where(s)} the center line")
            )
        s = side0[i]
        if s and i >= 7 and all(t == s for t in side0[i - 7 : i + 1]):
            found.append(Violation(i, 4, f"Rule 4: 8 points in a row {_where(s)} the center line"))
    return found


def capability(
    values: Sequence[float], *, lsl: float | None, usl: float | None, sigma_within: float
) -> Capability | None:
    """Cp / Cpk of the values against the spec limits; None when there are no values."""
    xs = _finite(values)
    if not xs:
        return None
    mean = fmean(xs)
    sigma = float(sigma_within)
    cp: float | None = None
    cpk: float | None = None
    if math.isfinite(sigma) and sigma > 0:
        if lsl is not None and usl is not None:
            cp = (float(usl) - float(lsl)) / (6 * sigma)
        sides = []
        if usl is not None:
            sides.append(float(usl) - mean)
        if lsl is not None:
            sides.append(mean - float(lsl))
        if sides:
            cpk = min(sides) / (3 * sigma)
    return Capability(n=len(xs), mean=mean, sigma_within=sigma, cp=cp, cpk=cpk)


def analyse(
    subgroups: Sequence[Sequence[float]],
    *,
    lsl: float | None,
    usl: float | None,
    baseline: Limits | None = None,
) -> Analysis:
    """Points, ranges, limits, rule violations and capability of the subgroups.

    ``points`` and ``ranges`` have one entry per subgroup, in order.  The limits are the
    frozen ``baseline`` when given, else computed from all the data (None when there is too
    little data, or the subgroup sizes are beyond the tables).  Without limits there are no
    violations and no capability.  ValueError for an empty subgroup or a non-finite value.
    """
    groups = [_finite(g) for g in subgroups]
    if any(len(g) == 0 for g in groups):
        raise ValueError("empty subgroup")
    points = [fmean(g) for g in groups]

    limits: Limits | None
    if baseline is not None:
        limits = baseline
    else:
        try:
            limits = compute_limits(groups)
        except ValueError:
            limits = None

    if limits is not None:
        kind = limits.kind
    else:
        kind = IMR if all(len(g) == 1 for g in groups) else XBAR_R
    ranges: list[float | None]
    if kind == IMR:
        ranges = [None, *moving_ranges(points)] if points else []
    else:
        ranges = [(max(g) - min(g)) if len(g) > 1 else None for g in groups]

    violations: list[Violation] = []
    cap: Capability | None = None
    if limits is not None:
        violations = western_electric(points, limits.center, limits.point_sigma)
        values = [v for g in groups for v in g]
        cap = capability(values, lsl=lsl, usl=usl, sigma_within=limits.sigma)
    return Analysis(
        limits=limits,
        baseline=baseline is not None,
        points=points,
        ranges=ranges,
        violations=violations,
        capability=cap,
    )


_INT_FIELDS = ("subgroup_size", "n")
_FLOAT_FIELDS = ("center", "ucl", "lcl", "sigma", "range_center", "range_ucl", "range_lcl")


def limits_to_dict(limits: Limits) -> dict[str, Any]:
    """JSON-ready dict of the limits (plain str / int / float values)."""
    return asdict(limits)


def limits_from_dict(data: dict[str, Any]) -> Limits:
    """Inverse of limits_to_dict; unknown keys are ignored, ValueError on bad or missing data."""
    try:
        kind = str(data["kind"])
        ints = {name: int(data[name]) for name in _INT_FIELDS}
        floats = {name: float(data[name]) for name in _FLOAT_FIELDS}
    except KeyError as exc:
        raise ValueError(f"missing field {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid limits data: {exc}") from exc
    if kind not in KINDS:
        raise ValueError(f"unknown chart kind {kind!r}")
    for name, value in floats.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} is not a finite number")
    return Limits(kind=kind, **ints, **floats)
