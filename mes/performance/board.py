"""Reads for the plant board (``/board/``): a tile per machine with its state, what runs on
it, the shift's OEE and whether a stop waits for its reason; and the shift each site is in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from mes.calendars.selectors import working_times
from mes.calendars.working_time import ShiftInstance, WorkingTime
from mes.choices import OperationStatus
from mes.models import Machine, Operation, Site

from . import oee
from .selectors import MachineRow, Range, combined, machine_rows, machines_by_id

# Ordered by how much a person is needed, for the summary line.
ATTENTION = ("down", "offline", "unknown", "idle", "setup", "running")


@dataclass(frozen=True)
class Window:
    """The range the board's figures cover for one site: the shift it is in (or the last
    one), or, without shifts, today."""

    site_id: int
    label: str
    start: datetime
    end: datetime  # of the shift (may be after now)
    shift: ShiftInstance | None


@dataclass
class Tile:
    machine: Machine
    operation: Operation | None
    declared: object | None  # the open declared downtime record (down or blocked by hand)
    needs_reason: object | None  # the open stop waiting for its reason
    kpis: oee.Kpis | None
    window: Window | None

    @property
    def blocked(self) -> bool:
        return self.declared is not None and self.declared.cause == "blocked"

    @property
    def progress(self) -> int | None:
        op = self.operation
        if op is None or not op.work_order.quantity:
            return None
        return min(100, int(op.quantity_good * 100 / op.work_order.quantity))


def current_window(site_id: int, calendar: WorkingTime, now: datetime) -> Window:
    shifts = calendar.shifts(now - timedelta(days=2), now + timedelta(microseconds=1))
    started = [s for s in shifts if s.start <= now]
    if started:
        shift = started[-1]
        return Window(site_id, shift.name or shift.code, shift.start, shift.end, shift)
    local = timezone.localtime(now, calendar.zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return Window(site_id, "", midnight, midnight + timedelta(days=1), None)


def windows(now: datetime, calendars: dict[int, WorkingTime] | None = None) -> dict[int, Window]:
    """Each site's window now."""
    calendars = working_times() if calendars is None else calendars
    return {pk: current_window(pk, calendar, now) for pk, calendar in calendars.items()}


def board(*, area: str | None = None, now: datetime | None = None) -> Board:
    """Active machines (of one area) by work center and code, each with its tile."""
    from shopfloor.downtime import open_downtimes

    now = now or timezone.now()
    machines = Machine.objects.filter(is_active=True).select_related("work_center__area__site")
    if area:
        machines = machines.filter(work_center__area__code=area)
    machines = list(machines.order_by("work_center__code", "code"))
    ids = [m.pk for m in machines]
    ops: dict[int, Operation] = {}
    for op in (
        Operation.objects.filter(
            machine_id__in=ids, status__in=[OperationStatus.RUNNING, OperationStatus.PAUSED]
        )
        .select_related("work_order")
        .order_by("-status", "-updated_at")
    ):
        ops.setdefault(op.machine_id, op)
    stops = open_downtimes(ids)
    calendars = working_times()
    by_site = windows(now, calendars)
    rows: list[MachineRow] = []
    for site_id in sorted({m.work_center.area.site_id for m in machines}):
        window = by_site.get(site_id)
        mine = [m.pk for m in machines if m.work_center.area.site_id == site_id]
        if window is not None:
            span = Range.of(window.start, now, now)
            rows += machine_rows(machines_by_id(mine), span, calendars)
    kpis = {row.machine.pk: combined([row]) for row in rows}
    result = []
    for machine in machines:
        stop = stops.get(machine.pk)
        declared = stop if stop is not None and stop.is_declared else None
        result.append(
            Tile(
                machine=machine,
                operation=ops.get(machine.pk),
                declared=declared,
                needs_reason=stop if stop is not None and not stop.reason else None,
                kpis=kpis.get(machine.pk),
                window=by_site.get(machine.work_center.area.site_id),
            )
        )
    return Board(result, rows, by_site)


@dataclass
class Board:
    tiles: list[Tile]
    rows: list[MachineRow]  # each machine's sums over its site's window
    windows: dict[int, Window]

    def summary(self, site: Site) -> tuple[Window | None, oee.Kpis | None]:
        """The site's window and the figures of its machines on this board together."""
        mine = [r for r in self.rows if r.machine.site_id == site.pk]
        return self.windows.get(site.pk), combined(mine) if mine else None
