"""Finite-capacity forward scheduling, as plain data in and out (no ORM).

The rule, in the order a planner would apply it by hand:

1. Work already on a machine stays there and finishes first (running work before paused
   work): it ends after its remaining quantity at standard cycle time (no second setup).
2. Then orders one after another: rush before normal, then earliest due date, then number.
   Each order's remaining operations run in routing sequence; an operation starts when its
   predecessor has ended and a machine of its work center is free, on the machine of that
   work center that can start it first (an operation already assigned to a machine waits
   for that machine). A machine left idle while a booked operation waited for its
   predecessor takes later orders' work in that gap when it fits entirely (so nothing
   booked earlier moves).
3. A machine that is down or offline is assumed back when it is expected back (declared by
   hand), else after ``down_allowance``; an inactive
   machine takes no work. A work center without active machines is a manual station: one
   lane of capacity.

Work is planned in working time only (:mod:`mes.calendars.working_time`, each work center
with its site's calendar, plain data): an operation starts at a working instant and its
standard time (setup plus remaining quantity times cycle time) runs on through working time,
stopping over breaks, nights and weekends. Without a calendar time runs around the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from mes.calendars.working_time import Calendars, WorkingTime

# Statuses as the core's state machine names them (kept as strings: no ORM import here).
RUNNING, PAUSED, DONE, CANCELLED = "running", "paused", "done", "cancelled"
UNAVAILABLE_STATES = frozenset({"down", "offline"})


@dataclass(frozen=True)
class MachineIn:
    id: int
    work_center_id: int
    state: str = "idle"
    back_at: datetime | None = None  # when a machine declared down is expected back

    def available_from(self, now: datetime, down_allowance: timedelta) -> datetime:
        """A machine that is down or offline is back when expected, else (not said, or
        overdue) after the allowance."""
        if self.state not in UNAVAILABLE_STATES:
            return now
        if self.back_at is not None and self.back_at > now:
            return self.back_at
        return now + down_allowance


@dataclass(frozen=True)
class OperationIn:
    id: int
    sequence: int
    work_center_id: int
    status: str
    machine_id: int | None
    setup_seconds: Decimal
    cycle_seconds: Decimal
    remaining_quantity: Decimal  # target minus good so far, never below zero

    @property
    def open(self) -> bool:
        return self.status not in (DONE, CANCELLED)

    @property
    def on_machine(self) -> bool:
        return self.status in (RUNNING, PAUSED)

    def seconds(self) -> Decimal:
        """Standard time still needed; an operation on a machine is past its setup."""
        run = self.cycle_seconds * max(self.remaining_quantity, Decimal(0))
        return run if self.on_machine else self.setup_seconds + run


@dataclass(frozen=True)
class OrderIn:
    id: int
    number: str
    rush: bool
    due: datetime
    operations: Sequence[OperationIn]  # in routing sequence


@dataclass(frozen=True)
class PlannedOperation:
    start: datetime
    end: datetime
    machine_id: int | None  # None on a manual station


@dataclass
class Plan:
    operations: dict[int, PlannedOperation] = field(default_factory=dict)
    projected_end: dict[int, datetime] = field(default_factory=dict)  # by order id

    def at_risk(self, order: OrderIn) -> bool:
        return is_at_risk(self.projected_end.get(order.id), order.due)


def is_at_risk(projected_end: datetime | None, due: datetime) -> bool:
    """The contract's ``at_risk``: projected to end after the due date."""
    return projected_end is not None and projected_end > due


def dispatch_order(orders: Iterable[OrderIn]) -> list[OrderIn]:
    return sorted(orders, key=lambda o: (not o.rush, o.due, o.number))


class _Lane:
    """One machine (or manual station): when it is free for good, and the idle gaps left
    before bookings that had to wait for their predecessor. Work runs in the lane's working
    time only: it starts at a working instant and stops over breaks and closed days."""

    __slots__ = ("calendar", "free_at", "gaps")

    def __init__(self, free_at: datetime, calendar: WorkingTime) -> None:
        self.calendar = calendar
        self.free_at = free_at
        self.gaps: list[tuple[datetime, datetime]] = []  # (start, end), in time order

    def span(self, ready_at: datetime, seconds: Decimal) -> tuple[datetime, datetime]:
        start = self.calendar.next_working(ready_at)
        return start, self.calendar.add(start, seconds)

    def earliest(self, ready_at: datetime, seconds: Decimal) -> tuple[datetime, datetime]:
        wall = timedelta(seconds=float(seconds))  # the least it takes, in working time or not
        for gap_start, gap_end in self.gaps:
            begin = max(gap_start, ready_at)
            if begin + wall > gap_end:
                continue
            start, end = self.span(begin, seconds)
            if end <= gap_end:
                return start, end
        return self.span(max(ready_at, self.free_at), seconds)

    def book(self, start: datetime, end: datetime) -> None:
        if start < self.free_at:  # inside a gap
            for i, (gap_start, gap_end) in enumerate(self.gaps):
                if gap_start <= start and end <= gap_end:
                    rest = [(a, b) for a, b in ((gap_start, start), (end, gap_end)) if b > a]
                    self.gaps[i : i + 1] = rest
                    break
        else:
            if start > self.free_at:
                self.gaps.append((self.free_at, start))
            self.free_at = end


class _Lanes:
    """The machines of each work center (a manual station where there are none)."""

    def __init__(
        self,
        machines: Iterable[MachineIn],
        now: datetime,
        down_allowance: timedelta,
        calendars: Calendars,
    ):
        self.machines: dict[int, _Lane] = {}
        self.by_work_center: dict[int, list[int]] = {}
        for m in sorted(machines, key=lambda m: m.id):
            calendar = calendars.of(m.work_center_id)
            self.machines[m.id] = _Lane(m.available_from(now, down_allowance), calendar)
            self.by_work_center.setdefault(m.work_center_id, []).append(m.id)
        self.manual: dict[int, _Lane] = {}
        self.calendars = calendars
        self.now = now

    def book(
        self, op: OperationIn, ready_at: datetime, seconds: Decimal
    ) -> tuple[datetime, datetime, int | None]:
        """Book ``op`` at the earliest start from ``ready_at`` (an idle gap it fits in, or
        after the lane's last booking) on the lane of its work center that offers it."""
        candidates = self.by_work_center.get(op.work_center_id)
        if not candidates:  # a manual station: one lane
            lane = self.manual.get(op.work_center_id)
            if lane is None:
                lane = _Lane(self.now, self.calendars.of(op.work_center_id))
                self.manual[op.work_center_id] = lane
            start, end = lane.earliest(ready_at, seconds)
            lane.book(start, end)
            return start, end, None
        if op.machine_id in self.machines:
            candidates = [op.machine_id]
        (start, end), machine = min(
            (self.machines[m].earliest(ready_at, seconds), m) for m in candidates
        )
        self.machines[machine].book(start, end)
        return start, end, machine


def plan(
    orders: Iterable[OrderIn],
    machines: Iterable[MachineIn],
    *,
    now: datetime,
    down_allowance: timedelta = timedelta(minutes=30),
    calendars: Calendars | None = None,
) -> Plan:
    """Plan every open operation of ``orders`` on ``machines`` (the active ones), in the
    working time of each work center's calendar (around the clock where it has none)."""
    orders = dispatch_order(orders)
    lanes = _Lanes(machines, now, down_allowance, calendars or Calendars())
    result = Plan()
    # 1. What is on a machine now finishes there first: what runs, then what is paused (a
    # paused operation may have let another one run on its machine meanwhile).
    for status in (RUNNING, PAUSED):
        for order in orders:
            for op in order.operations:
                if op.status == status:
                    booked = lanes.book(op, now, op.seconds())
                    result.operations[op.id] = PlannedOperation(*booked)
    # 2. Everything else, order by order, step by step.
    for order in orders:
        ready_at, last_end = now, None
        for op in order.operations:
            if not op.open:
                continue
            planned = result.operations.get(op.id)
            if planned is None:
                planned = PlannedOperation(*lanes.book(op, ready_at, op.seconds()))
                result.operations[op.id] = planned
            ready_at = last_end = planned.end
        if last_end is not None:
            result.projected_end[order.id] = last_end
    return result
