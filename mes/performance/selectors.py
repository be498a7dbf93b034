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
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from mes.calendars.selectors import calendar_specs
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


def _machines(level: str, code: str | None) -> list[_Machine]:
    rows = Machine.objects.filter(is_active=True)
    if code:
        rows = rows.filter(**{LEVELS[level]: code})
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


def stop_totals(machine_ids: list[int], span: Range) -> dict[int, oee.Stops]:
    """Planned stops and failures from the downtime records, clipped to the range, summed
    by the database."""
    from shopfloor.models import DowntimeRecord  # stops are recorded on the shop floor side

    start = Value(span.start, output_field=DateTimeField())
    end = Value(span.end, output_field=DateTimeField())
    clipped = ExpressionWrapper(
        Least(Coalesce(F("ended_at"), end), end) - Greatest(F("started_at"), start),
        output_field=DurationField(),
    )
    planned = Q(reason_choice__planned=True)
    failure = Q(cause__in=FAILURE_CAUSES) & ~planned
    rows = (
        DowntimeRecord.objects.filter(machine_id__in=machine_ids, started_at__lt=span.end)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=span.start))
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


def figures(
    level: str,
    *,
    start: datetime,
    end: datetime,
    code: str | None = None,
    now: datetime | None = None,
) -> list[Figures]:
    """OEE of every machine, work center, area or site (``level``; one when ``code`` is
    given) over ``start`` to ``end``."""
    now = now or timezone.now()
    span = Range.of(start, end, now)
    machines = _machines(level, code)
    ids = [m.pk for m in machines]
    totals = bucket_totals(ids, span)
    stops = stop_totals(ids, span)
    busy = _busy_machines(ids)
    calendars = {pk: WorkingTime(spec) for pk, spec in calendar_specs().items()}
    working_by_site: dict[int, float] = {}
    groups: dict[str, list] = defaultdict(list)
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
        groups[machine.group].append(
            (machine, row, working_by_site[machine.site_id], stops.get(machine.pk, oee.Stops()))
        )
    result = []
    for group, members in groups.items():
        summed = oee.total(row for _, row, _, _ in members)
        working = sum(w for _, _, w, _ in members)
        stop = oee.Stops(
            planned_s=sum(s.planned_s for *_, s in members),
            failures=sum(s.failures for *_, s in members),
            failure_s=sum(s.failure_s for *_, s in members),
        )
        result.append(
            Figures(
                level=level,
                code=group,
                name=members[0][0].name,
                machines=len(members),
                kpis=oee.kpis(summed, working_s=working, stops=stop),
            )
        )
    return result


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
