"""OEE and its losses after ISO 22400, as plain data in and out (no ORM).

The time model (ISO 22400-2), for one machine or any group of them, over a range:

- **Working time** (planned operation time): the shift calendar's working time in the range.
- **Planned production time** (planned busy time, PBT) = working time - planned stops (stops
  whose reason is marked planned) - idle time without work (no operation in progress on the
  machine) + running outside working time (production outside the plan counts as planned).
- **Run time** (actual production time, APT) = time running + short stops (stops shorter
  than the small-stop threshold are a speed loss, not an availability loss).
- **Availability** = run time / planned production time.
- **Performance** (effectiveness) = ideal cycle time x total count / run time.
- **Quality** (quality ratio) = good count / total count.
- **OEE** = availability x performance x quality (= ideal time of the good units / planned
  production time).

The six big losses, in seconds, partition planned production time less the ideal time of
the good units:

- **breakdowns**: unplanned stops of at least the threshold (down, or idle with an operation
  running: waiting for material, an operator, ...); **no data**: offline or unknown;
- **setup and adjustment**: time in setup;
- **small stops**: stops shorter than the threshold;
- **reduced speed**: run time - small stops - ideal time of all units counted;
- **startup rejects**: ideal time of the scrap made soon after an operation started;
- **production rejects**: ideal time of the other scrap.

Also: **setup ratio** = setup / (run time + setup); **MTBF** = run time / failures, **MTTR** =
failure time / failures, where a failure is an unplanned downtime record of a machine down.

Ratios are None where they are undefined (nothing planned, nothing run, nothing counted),
never a division by zero, and each is capped at 1 (a standard time set too long would
otherwise show performance above 100 %).

:func:`spread` turns a state span into per-bucket seconds; the rollups
(:mod:`mes.performance.rollups`) keep those sums per machine and quarter hour as events
arrive, and :func:`kpis` turns summed buckets into the figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from mes.calendars.working_time import WorkingTime

BUCKET = timedelta(minutes=15)
RUNNING, IDLE, DOWN, SETUP = "running", "idle", "down", "setup"
NO_DATA_STATES = frozenset({"offline", "unknown"})
LOSSES = (
    "breakdowns",
    "setup",
    "small_stops",
    "reduced_speed",
    "startup_rejects",
    "production_rejects",
    "no_data",
)


@dataclass
class Totals:
    """Sums over one machine's quarter hour, or over any set of them (the rollup's columns).
    State seconds count working time only, except ``run_off_s``."""

    run_s: float = 0.0  # running, in working time
    run_off_s: float = 0.0  # running outside working time
    setup_s: float = 0.0
    down_s: float = 0.0
    idle_s: float = 0.0  # idle with an operation in progress on the machine
    nowork_s: float = 0.0  # idle with none: not planned busy time
    nodata_s: float = 0.0  # offline or unknown
    small_s: float = 0.0  # the part of down_s and idle_s in short stops
    small_n: int = 0
    good: float = 0.0
    scrap: float = 0.0
    startup_scrap: float = 0.0
    ideal_s: float = 0.0  # ideal cycle time x (good + scrap)
    scrap_ideal_s: float = 0.0  # ideal cycle time x scrap
    startup_ideal_s: float = 0.0  # ideal cycle time x startup scrap

    def __add__(self, other: Totals) -> Totals:
        return Totals(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in FIELDS})


FIELDS = fields(Totals)
COLUMNS = tuple(f.name for f in FIELDS)


def bucket_of(at: datetime) -> datetime:
    """The start of the quarter hour ``at`` is in (UTC)."""
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def total(items: Iterable[Totals]) -> Totals:
    result = Totals()
    for item in items:
        result = result + item
    return result


# --- From events to buckets -------------------------------------------------------------------


def spread(
    state: str,
    start: datetime,
    end: datetime,
    working: WorkingTime,
    *,
    work: bool = True,
) -> dict[datetime, Totals]:
    """A span of one state as seconds per quarter hour: its working-time part under the
    state's column (idle without ``work`` in progress: ``nowork_s``), and for running its
    part outside working time under ``run_off_s``."""
    buckets: dict[datetime, Totals] = {}
    if end <= start:
        return buckets
    cursor = bucket_of(start)
    while cursor < end:
        lo, hi = max(start, cursor), min(end, cursor + BUCKET)
        inside = working.seconds_between(lo, hi)
        outside = (hi - lo).total_seconds() - inside
        row = Totals()
        if state == RUNNING:
            row.run_s, row.run_off_s = inside, outside
        elif state == SETUP:
            row.setup_s = inside
        elif state == DOWN:
            row.down_s = inside
        elif state == IDLE and not work:
            row.nowork_s = inside
        elif state == IDLE:
            row.idle_s = inside
        else:
            row.nodata_s = inside
        if any(getattr(row, name) for name in COLUMNS):
            buckets[cursor] = row
        cursor += BUCKET
    return buckets


def is_stop(state: str) -> bool:
    return state in (IDLE, DOWN)


def small_stop(start: datetime, end: datetime, working: WorkingTime) -> dict[datetime, Totals]:
    """A stop found short when it ended: its working time per quarter hour under
    ``small_s``, counted once in the quarter hour it began."""
    buckets: dict[datetime, Totals] = {}
    cursor = bucket_of(start)
    while cursor < end:
        inside = working.seconds_between(max(start, cursor), min(end, cursor + BUCKET))
        if inside:
            buckets[cursor] = Totals(small_s=inside)
        cursor += BUCKET
    first = bucket_of(start)
    buckets[first] = buckets.get(first, Totals()) + Totals(small_n=1)
    return buckets


def count_row(good: float, scrap: float, cycle_seconds: float, *, startup: bool = False) -> Totals:
    """Units counted at one moment, with their ideal time."""
    return Totals(
        good=good,
        scrap=scrap,
        startup_scrap=scrap if startup else 0.0,
        ideal_s=cycle_seconds * (good + scrap),
        scrap_ideal_s=cycle_seconds * scrap,
        startup_ideal_s=cycle_seconds * scrap if startup else 0.0,
    )


# --- From buckets to figures ------------------------------------------------------------------


@dataclass(frozen=True)
class Stops:
    """What the downtime records add over the range (summed by the database)."""

    planned_s: float = 0.0  # stops with a planned reason
    failures: int = 0
    failure_s: float = 0.0


@dataclass(frozen=True)
class Kpis:
    working_s: float
    planned_s: float
    run_s: float
    setup_s: float
    good: float
    scrap: float
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    setup_ratio: float | None
    mtbf_s: float | None
    mttr_s: float | None
    failures: int
    small_stops: int
    losses: dict[str, float]


def ratio(part: float, whole: float) -> float | None:
    if whole <= 0:
        return None
    return max(0.0, min(1.0, part / whole))


def kpis(totals: Totals, *, working_s: float, stops: Stops = Stops()) -> Kpis:
    """The figures for summed buckets, the working time of the same machines and range,
    and the stops the downtime records classify."""
    t = totals
    stopped = t.down_s + t.idle_s - t.small_s  # longer stops with work in progress
    planned_stops = min(stops.planned_s, max(0.0, stopped))
    planned = max(0.0, working_s - planned_stops - t.nowork_s + t.run_off_s)
    small = t.small_s
    run = t.run_s + t.run_off_s + small
    count = t.good + t.scrap
    availability = ratio(run, planned)
    performance = ratio(t.ideal_s, run)
    quality = ratio(t.good, count)
    oee = None
    if availability is not None and performance is not None and quality is not None:
        oee = availability * performance * quality
    elif planned > 0 and not count:
        oee = 0.0  # time was planned and nothing was made
    breakdowns = max(0.0, stopped - planned_stops)
    losses = {
        "breakdowns": breakdowns,
        "setup": t.setup_s,
        "small_stops": small,
        "reduced_speed": max(0.0, run - small - t.ideal_s),
        "startup_rejects": t.startup_ideal_s,
        "production_rejects": max(0.0, t.scrap_ideal_s - t.startup_ideal_s),
        "no_data": t.nodata_s,
    }
    return Kpis(
        working_s=working_s,
        planned_s=planned,
        run_s=run,
        setup_s=t.setup_s,
        good=t.good,
        scrap=t.scrap,
        availability=availability,
        performance=performance,
        quality=quality,
        oee=oee,
        setup_ratio=ratio(t.setup_s, run + t.setup_s),
        mtbf_s=run / stops.failures if stops.failures else None,
        mttr_s=stops.failure_s / stops.failures if stops.failures else None,
        failures=stops.failures,
        small_stops=t.small_n,
        losses=losses,
    )
