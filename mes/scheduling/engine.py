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
3. A machine that is down or offline is assumed back after ``down_allowance``; an inactive
   machine takes no work. A work center without active machines is a manual station: one
   lane of capacity.

Time runs around the clock (no shift calendar). Durations are standard times: setup plus
remaining quantity times cycle time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

# Statuses as the core's state machine names them (kept as strings: no ORM import here).
RUNNING, PAUSED, DONE, CANCELLED = "running", "paused", "done", "cancelled"
UNAVAILABLE_STATES = frozenset({"down", "offline"})


@dataclass(frozen=True)
class MachineIn:
    id: int
    work_center_id: int
    state: str = "idle"


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
    before bookings that had to wait for their predecessor."""

    __slots__ = ("free_at", "gaps")

    def __init__(self, free_at: datetime) -> None:
        self.free_at = free_at
        self.gaps: list[tuple[datetime, datetime]] = []  # (start, end), in time order

    def earliest(self, ready_at: datetime, duration: timedelta) -> datetime:
        for gap_start, gap_end in self.gaps:
            start = max(gap_start, ready_at)
            if start + duration <= gap_end:
                return start
        return max(ready_at, self.free_at)

    def book(self, start: datetime, duration: timedelta) -> None:
        end = start + duration
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

    def __init__(self, machines: Iterable[MachineIn], now: datetime, down_allowance: timedelta):
        self.machines: dict[int, _Lane] = {}
        self.by_work_center: dict[int, list[int]] = {}
        for m in sorted(machines, key=lambda m: m.id):
            back = now + down_allowance if m.state in UNAVAILABLE_STATES else now
            self.machines[m.id] = _Lane(back)
            self.by_work_center.setdefault(m.work_center_id, []).append(m.id)
        self.manual: dict[int, _Lane] = {}
        self.now = now

    def book(
        self, op: OperationIn, ready_at: datetime, seconds: Decimal
    ) -> tuple[datetime, datetime, int | None]:
        """Book ``op`` at the earliest start from ``ready_at`` (an idle gap it fits in, or
        after the lane's last booking) on the lane of its work center that offers it."""
        duration = timedelta(seconds=float(seconds))
        candidates = self.by_work_center.get(op.work_center_id)
        if not candidates:  # a manual station: one lane
            lane = self.manual.setdefault(op.work_center_id, _Lane(self.now))
            start = lane.earliest(ready_at, duration)
            lane.book(start, duration)
            return start, start + duration, None
        if op.machine_id in self.machines:
            candidates = [op.machine_id]
        start, machine = min((self.machines[m].earliest(ready_at, duration), m) for m in candidates)
        self.machines[machine].book(start, duration)
        return start, start + duration, machine


def plan(
    orders: Iterable[OrderIn],
    machines: Iterable[MachineIn],
    *,
    now: datetime,
    down_allowance: timedelta = timedelta(minutes=30),
) -> Plan:
    """Plan every open operation of ``orders`` on ``machines`` (the active ones)."""
    orders = dispatch_order(orders)
    lanes = _Lanes(machines, now, down_allowance)
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
