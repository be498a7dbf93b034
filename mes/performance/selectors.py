"""OEE for machines, work centers, areas and sites over a range: sums of the rollups done by
the database, the span each machine is in now, the working time from the calendars, and the
planned stops and failures summed from the downtime records; the figures come from the pure
:func:`mes.performance.oee.kpis`.

Ranges are taken to whole quarter hours (the rollups' grain) and end at the latest now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import (
    Case,
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from mes.calendars.selectors import working_times
from mes.calendars.working_time import WorkingTime
from mes.choices import OperationStatus
from mes.models import Machine, Operation

from . import oee
from .models import MachineBucket

LEVELS = {
    "machine": "code",
    "work_center": "work_center__code",
    "area": "work_center__area__code",
    "site": "work_center__area__site__code",
}
NAMES = {
    "machine": "name",
    "work_center": "work_center__name",
    "area": "work_center__area__name",
    "site": "work_center__area__site__name",
}
FAILURE_CAUSES = ("down", "manual")  # a machine down (from the PLC or declared by hand)


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime  # exclusive; never after now

    @classmethod
    def of(cls, start: datetime, end: datetime, now: datetime | None = None) -> Range:
        now = now or timezone.now()
        first = oee.bucket_of(start)
        last = oee.bucket_of(end)
        if last < end:
            last += oee.BUCKET
        return cls(first, max(first, min(last, now)))


@dataclass(frozen=True)
class Figures:
    level: str
    code: str
    name: str
    machines: int
    kpis: oee.Kpis


@dataclass(frozen=True)
class _Machine:
    pk: int
    site_id: int
    group: str
    name: str
    state: str
    state_since: datetime


def _machines(level: str, code: str | None, within: dict[str, str] | None = None) -> list[_Machine]:
    rows = Machine.objects.filter(is_active=True)
    if code:
        rows = rows.filter(**{LEVELS[level]: code})
    for outer, outer_code in (within or {}).items():
        rows = rows.filter(**{LEVELS[outer]: outer_code})
    return [
        _Machine(pk, site, group, name, state, since)
        for pk, site, group, name, state, since in rows.order_by(LEVELS[level], "code").values_list(
            "pk",
            "work_center__area__site_id",
            LEVELS[level],
            NAMES[level],
            "state",
            "state_since",
        )
    ]


def bucket_totals(machine_ids: list[int], span: Range) -> dict[int, oee.Totals]:
    """The rollups summed per machine by the database."""
    sums = {column: Sum(column) for column in oee.COLUMNS}
    rows = (
        MachineBucket.objects.filter(
            machine_id__in=machine_ids, start__gte=span.start, start__lt=span.end
        )
        .values("machine_id")
        .annotate(**sums)
        .order_by()
    )
    return {row["machine_id"]: oee.Totals(**{c: row[c] or 0 for c in oee.COLUMNS}) for row in rows}


def _busy_machines(machine_ids: list[int]) -> set[int]:
    return set(
        Operation.objects.filter(
            machine_id__in=machine_ids,
            status__in=[OperationStatus.RUNNING, OperationStatus.PAUSED],
        ).values_list("machine_id", flat=True)
    )


def _stops_in(span: Range) -> tuple[QuerySet, ExpressionWrapper]:
    """The downtime records overlapping the range (an open one lasts to its end), and an
    expression for each one's duration clipped to the range."""
    from shopfloor.models import DowntimeRecord  # stops are recorded on the shop floor side

    start = Value(span.start, output_field=DateTimeField())
    end = Value(span.end, output_field=DateTimeField())
    clipped = ExpressionWrapper(
        Least(Coalesce(F("ended_at"), end), end) - Greatest(F("started_at"), start),
        output_field=DurationField(),
    )
    records = DowntimeRecord.objects.filter(started_at__lt=span.end).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=span.start)
    )
    return records, clipped


def stop_totals(machine_ids: list[int], span: Range) -> dict[int, oee.Stops]:
    """Planned stops and failures from the downtime records, clipped to the range, summed
    by the database."""
    records, clipped = _stops_in(span)
    planned = Q(reason_choice__planned=True)
    failure = Q(cause__in=FAILURE_CAUSES) & ~planned
    rows = (
        records.filter(machine_id__in=machine_ids)
        .values("machine_id")
        .annotate(
            planned_s=Sum(clipped, filter=planned),
            failure_s=Sum(clipped, filter=failure),
            failures=Count("id", filter=failure & Q(started_at__gte=span.start)),
        )
        .order_by()
    )
    return {
        row["machine_id"]: oee.Stops(
            planned_s=_seconds(row["planned_s"]),
            failures=row["failures"],
            failure_s=_seconds(row["failure_s"]),
        )
        for row in rows
    }


def _seconds(value: timedelta | int | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value / 1_000_000  # SQLite sums durations in microseconds


@dataclass(frozen=True)
class MachineRow:
    """One machine's sums over a range: rollups plus its open span, its working time and
    the stops the downtime records classify."""

    machine: _Machine
    totals: oee.Totals
    working_s: float
    stops: oee.Stops


def machine_rows(
    machines: list[_Machine], span: Range, calendars: dict[int, WorkingTime] | None = None
) -> list[MachineRow]:
    """Four queries whatever the number of machines (plus the calendars when not given)."""
    ids = [m.pk for m in machines]
    totals = bucket_totals(ids, span)
    stops = stop_totals(ids, span)
    busy = _busy_machines(ids)
    if calendars is None:
        calendars = working_times()
    working_by_site: dict[int, float] = {}
    rows = []
    for machine in machines:
        site_calendar = calendars.get(machine.site_id) or WorkingTime()
        if machine.site_id not in working_by_site:
            working_by_site[machine.site_id] = site_calendar.seconds_between(span.start, span.end)
        row = totals.get(machine.pk, oee.Totals())
        # The span the machine is in now has not closed yet: count it up to now.
        since = max(machine.state_since, span.start)
        if since < span.end:
            work = machine.pk in busy
            live = oee.spread(machine.state, since, span.end, site_calendar, work=work)
            row = row + oee.total(live.values())
        rows.append(
            MachineRow(
                machine, row, working_by_site[machine.site_id], stops.get(machine.pk, oee.Stops())
            )
        )
    return rows


def combined(rows: list[MachineRow]) -> oee.Kpis:
    """The figures of several machines together."""
    return oee.kpis(
        oee.total(r.totals for r in rows),
        working_s=sum(r.working_s for r in rows),
        stops=oee.Stops(
            planned_s=sum(r.stops.planned_s for r in rows),
            failures=sum(r.stops.failures for r in rows),
            failure_s=sum(r.stops.failure_s for r in rows),
        ),
    )


def _grouped(level: str, rows: list[MachineRow]) -> list[Figures]:
    groups: dict[str, list[MachineRow]] = defaultdict(list)
    for row in rows:
        groups[row.machine.group].append(row)
    return [
        Figures(
            level=level,
            code=group,
            name=members[0].machine.name,
            machines=len(members),
            kpis=combined(members),
        )
        for group, members in groups.items()
    ]


def figures(
    level: str,
    *,
    start: datetime,
    end: datetime,
    code: str | None = None,
    now: datetime | None = None,
    within: dict[str, str] | None = None,
) -> list[Figures]:
    """OEE of every machine, work center, area or site (``level``; one when ``code`` is
    given; only those inside ``within``, such as ``{"area": "FAB"}``) over ``start`` to
    ``end``."""
    now = now or timezone.now()
    span = Range.of(start, end, now)
    return _grouped(level, machine_rows(_machines(level, code, within), span))


def machines_by_id(machine_ids: list[int]) -> list[_Machine]:
    """The machines the board shows, as the figures read them."""
    wanted = set(machine_ids)
    return [m for m in _machines("machine", None) if m.pk in wanted]


def level_exists(level: str, code: str) -> bool:
    from mes.models import Area, Site, WorkCenter

    model = {"machine": Machine, "work_center": WorkCenter, "area": Area, "site": Site}[level]
    return model.objects.filter(code=code).exists()


def representation(row: Figures) -> dict:
    """One row of ``GET /api/v1/oee/``."""
    k = row.kpis
    return {
        "code": row.code,
        "name": row.name,
        "machines": row.machines,
        "availability": k.availability,
        "performance": k.performance,
        "quality": k.quality,
        "oee": k.oee,
        "working_seconds": k.working_s,
        "planned_seconds": k.planned_s,
        "run_seconds": k.run_s,
        "setup_seconds": k.setup_s,
        "good": k.good,
        "scrap": k.scrap,
        "setup_ratio": k.setup_ratio,
        "mtbf_seconds": k.mtbf_s,
        "mttr_seconds": k.mttr_s,
        "failures": k.failures,
        "small_stops": k.small_stops,
        "losses": k.losses,
    }


def figures_total(
    *, start: datetime, end: datetime, within: dict[str, str] | None = None, now=None
) -> oee.Kpis | None:
    """The figures of every machine inside ``within`` together."""
    now = now or timezone.now()
    rows = machine_rows(_machines("machine", None, within), Range.of(start, end, now))
    return combined(rows) if rows else None


def daily_totals(
    days: list[datetime], *, within: dict[str, str] | None = None, now=None
) -> list[oee.Kpis | None]:
    """The figures of every machine inside ``within`` together, for each day starting at
    the given instants (the machines and calendars read once)."""
    now = now or timezone.now()
    machines = _machines("machine", None, within)
    calendars = working_times()
    result: list[oee.Kpis | None] = []
    for day in days:
        if day >= now or not machines:
            result.append(None)
            continue
        span = Range.of(day, day + timedelta(days=1), now)
        result.append(combined(machine_rows(machines, span, calendars)))
    return result


IN_WORDS = "Other (given in words)"


@dataclass(frozen=True)
class ParetoRow:
    reason: str  # "Category > reason", or "" for stops still without a reason
    planned: bool | None
    stops: int
    seconds: float


def downtime_pareto(
    *, start: datetime, end: datetime, within: dict[str, str] | None = None
) -> list[ParetoRow]:
    """Downtime by reason over the range (stops clipped to it), longest first, summed by
    the database."""
    records, clipped = _stops_in(Range.of(start, end))
    for level, code in (within or {}).items():
        records = records.filter(**{f"machine__{LEVELS[level]}": code})
    rows = (
        records.annotate(worded=Case(When(reason="", then=Value(False)), default=Value(True)))
        .values(
            "reason_choice__parent__name", "reason_choice__name", "reason_choice__planned", "worded"
        )
        .annotate(stops=Count("id"), total=Sum(clipped))
        .order_by()
    )

    def label(row: dict) -> str:
        if row["reason_choice__name"]:
            return f"{row['reason_choice__parent__name']} > {row['reason_choice__name']}"
        return IN_WORDS if row["worded"] else ""

    result = [
        ParetoRow(
            reason=label(row),
            planned=row["reason_choice__planned"],
            stops=row["stops"],
            seconds=_seconds(row["total"]),
        )
        for row in rows
    ]
    return sorted(result, key=lambda r: (-r.seconds, r.reason))
