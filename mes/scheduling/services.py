"""The live schedule: re-plan when the floor or the orders change, and write what moved.

:func:`replan_if_needed` runs every second (Celery beat). It re-plans when an audited change
happened since the last plan (a machine stopped, an operation started or finished, a rush
order arrived, an order was held), when the active machines or a shift calendar changed
(capacity), or when the
last plan is older than ``MES_SCHEDULE_REFRESH_SECONDS``. :func:`replan` computes the plan
with the pure :mod:`mes.scheduling.engine` from one snapshot and hands the orders whose plan
moved to :func:`apply_schedules`, which writes them in chunks (one transaction each, with
set-based statements) with one audit record and one ``schedule.changed`` event per order
whose projected end moved. :func:`apply_schedule` writes one order the same way.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Prefetch, Q
from django.utils import timezone

from erp_sync.models import EventType
from erp_sync.outbox import NewEvent, record_events
from mes import clock
from mes.calendars.selectors import calendars_by_work_center
from mes.calendars.selectors import fingerprint as calendar_fingerprint
from mes.choices import EntityType, OperationStatus, WorkOrderStatus
from mes.formats import iso_utc
from mes.models import AuditRecord, Machine, Operation, ScheduleState, WorkOrder
from mes.selectors import render_json, work_order_representation
from mes.services.bulk import insert_rows, update_rows
from mes.services.common import (
    Actor,
    _lock_operations,
    _lock_work_order,
    _save_work_order,
    _when,
    audit_record,
    share_related,
)
from shopfloor.choices import PLC_ACTOR_PREFIX

from . import engine

logger = logging.getLogger(__name__)

SCHEDULED = (WorkOrderStatus.RELEASED, WorkOrderStatus.IN_PROGRESS)
OWN_ACTIONS = ("reschedule",)  # the scheduler's own audit records do not trigger a plan
# Nor do the parts PLCs count (a booking pass every few seconds on every running machine):
# the periodic refresh takes them in. A count entered at a terminal still re-plans at once.
PLC_COUNTS = Q(action="report_quantity", actor_name__startswith=PLC_ACTOR_PREFIX)


def _triggers():
    return AuditRecord.objects.exclude(action__in=OWN_ACTIONS).exclude(PLC_COUNTS)


LEASE = timedelta(minutes=2)  # longer than any re-plan; how long a dead worker blocks


@dataclass
class ReplanSummary:
    orders: int = 0  # orders planned
    operations: int = 0  # open operations planned
    changed: int = 0  # orders whose plan was written
    seconds: float = 0.0
    reason: str = ""


def _machines() -> list[engine.MachineIn]:
    return [
        engine.MachineIn(id=pk, work_center_id=wc, state=state, back_at=back_at)
        for pk, wc, state, back_at in Machine.objects.filter(is_active=True)
        .order_by("pk")
        .values_list("pk", "work_center_id", "state", "expected_back_at")
    ]


def _orders() -> list[WorkOrder]:
    ops = Operation.objects.only(
        "id",
        "work_order_id",
        "sequence",
        "work_center_id",
        "machine_id",
        "status",
        "setup_seconds",
        "cycle_seconds",
        "quantity_good",
        "planned_start",
        "planned_end",
    ).order_by("sequence")
    return list(
        WorkOrder.objects.filter(status__in=SCHEDULED)
        .only("id", "number", "priority", "due_date", "quantity", "projected_end", "at_risk")
        .prefetch_related(Prefetch("operations", queryset=ops))
    )


def _order_in(wo: WorkOrder) -> engine.OrderIn:
    return engine.OrderIn(
        id=wo.pk,
        number=wo.number,
        rush=wo.is_rush,
        due=wo.due_date,
        operations=[
            engine.OperationIn(
                id=op.pk,
                sequence=op.sequence,
                work_center_id=op.work_center_id,
                status=op.status,
                machine_id=op.machine_id,
                setup_seconds=Decimal(op.setup_seconds),
                cycle_seconds=op.cycle_seconds,
                remaining_quantity=max(wo.quantity - op.quantity_good, Decimal(0)),
            )
            for op in wo.operations.all()
        ],
    )


def _unchanged(wo: WorkOrder, plan: engine.Plan, tolerance: float) -> bool:
    """Cheap check on the snapshot, so that only orders whose plan moved are locked."""
    end = plan.projected_end.get(wo.pk)
    if moved_beyond(wo.projected_end, end, tolerance) or wo.at_risk != engine.is_at_risk(
        end, wo.due_date
    ):
        return False
    for op in wo.operations.all():
        planned = plan.operations.get(op.pk)
        if planned is None:
            continue
        if moved_beyond(op.planned_start, planned.start, tolerance) or moved_beyond(
            op.planned_end, planned.end, tolerance
        ):
            return False
    return True


def replan(*, reason: str = "", now: datetime | None = None, bulk: bool = True) -> ReplanSummary:
    """Plan every released and in-progress order, and write the orders whose plan moved.
    Orders that left the schedule (held, completed, cancelled) lose their projection.

    ``bulk`` writes them with :func:`apply_schedules` (set-based, in chunks); off, one
    :func:`apply_schedule` per order (the reference the bulk path is tested against)."""
    started = time.perf_counter()
    now = now or timezone.now()
    tolerance = settings.MES_SCHEDULE_TOLERANCE_SECONDS
    orders = _orders()
    plan = engine.plan(
        [_order_in(wo) for wo in orders],
        _machines(),
        now=now,
        down_allowance=timedelta(minutes=settings.MES_SCHEDULE_DOWN_ALLOWANCE_MINUTES),
        calendars=calendars_by_work_center(since=(now - timedelta(days=2)).date()),
    )
    summary = ReplanSummary(orders=len(orders), operations=len(plan.operations), reason=reason)
    writes = [
        ScheduleWrite(
            wo.pk,
            projected_end=plan.projected_end.get(wo.pk),
            planned={
                op.pk: (plan.operations[op.pk].start, plan.operations[op.pk].end)
                for op in wo.operations.all()
                if op.pk in plan.operations
            },
        )
        for wo in orders
        if not _unchanged(wo, plan, tolerance)
    ]
    left = (
        WorkOrder.objects.exclude(status__in=SCHEDULED)
        .filter(Q(projected_end__isnull=False) | Q(at_risk=True))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    writes += [ScheduleWrite(pk, projected_end=None, planned={}) for pk in left]
    write = apply_schedules if bulk else _apply_one_by_one
    summary.changed = write(writes, reason=reason, at=now, tolerance_seconds=tolerance)
    summary.seconds = time.perf_counter() - started
    return summary


# --- Writing one order's plan -----------------------------------------------------------------

SCHEDULER = Actor.system("scheduler")


def moved_beyond(before: datetime | None, after: datetime | None, tolerance: float) -> bool:
    if before is None or after is None:
        return before is not after
    return abs((after - before).total_seconds()) > tolerance


@dataclass(frozen=True)
class ScheduleWrite:
    """One order's new plan: its projected end, and start and end of its open operations by
    operation id (an open operation left out is unplanned)."""

    work_order_id: int
    projected_end: datetime | None
    planned: dict[int, tuple[datetime, datetime]]


@dataclass
class _Move:
    """What a new plan changes on one locked order (see :func:`_moves`)."""

    work_order: WorkOrder
    operations: list[Operation]
    moved_operations: list[Operation]
    end_moved: bool
    previous_end: datetime | None
    was_at_risk: bool


def _moves(
    wo: WorkOrder, ops: list[Operation], write: ScheduleWrite, tolerance_seconds: float
) -> _Move | None:
    """Apply the new plan to the locked order and operations in memory; None when nothing
    moved beyond the tolerance."""
    moved_ops = []
    for op in ops:
        if op.status in (OperationStatus.DONE, OperationStatus.CANCELLED):
            continue
        start, end = write.planned.get(op.pk, (None, None))
        if moved_beyond(op.planned_start, start, tolerance_seconds) or moved_beyond(
            op.planned_end, end, tolerance_seconds
        ):
            op.planned_start, op.planned_end = start, end
            moved_ops.append(op)
    at_risk = engine.is_at_risk(write.projected_end, wo.due_date)
    previous, was_at_risk = wo.projected_end, wo.at_risk
    # Crossing the due date is a change however small the move.
    end_moved = (
        moved_beyond(previous, write.projected_end, tolerance_seconds) or at_risk != was_at_risk
    )
    if not (moved_ops or end_moved):
        return None
    if end_moved:
        wo.projected_end, wo.at_risk = write.projected_end, at_risk
    return _Move(wo, ops, moved_ops, end_moved, previous, was_at_risk)


def _reschedule_audit(move: _Move, reason: str, at: datetime) -> AuditRecord:
    wo = move.work_order
    return audit_record(
        SCHEDULER,
        entity_type=EntityType.WORK_ORDER,
        entity_id=wo.pk,
        entity_label=wo.number,
        work_order=wo,
        action="reschedule",
        at=at,
        changes={
            "projected_end": [iso_utc(move.previous_end), iso_utc(wo.projected_end)],
            "at_risk": [move.was_at_risk, wo.at_risk],
        },
        reason=reason[:500],
    )


def _schedule_changed(move: _Move, reason: str) -> NewEvent:
    wo = move.work_order
    return NewEvent(
        event_type=EventType.SCHEDULE_CHANGED,
        aggregate_key=wo.number,
        data={
            "work_order": wo.number,
            "projected_end": iso_utc(wo.projected_end),
            "previous_projected_end": iso_utc(move.previous_end),
            "at_risk": wo.at_risk,
            "reason": reason,
        },
        occurred_at=wo.updated_at,
    )


def apply_schedule(
    work_order_id: int,
    *,
    projected_end: datetime | None,
    planned: dict[int, tuple[datetime, datetime]],
    reason: str,
    at: datetime | None = None,
    tolerance_seconds: float = 0,
) -> bool:
    """Write a new plan for one order: planned start and end of its open operations (by
    operation id; an open operation left out is unplanned), its projected end, and whether
    that is after the due date.

    A time that moved by at most ``tolerance_seconds`` is kept as it was. Returns False,
    writing nothing, when nothing moved. When the projected end moved or ``at_risk`` flipped,
    the change is audited and ``schedule.changed`` goes to the ERP; a shift of operations
    alone gives a new version of the representation (the changes feed shows it) but no
    event. Status and quantities are never touched: an operation that finished meanwhile
    keeps the plan it had.
    """
    at = _when(at)
    write = ScheduleWrite(work_order_id, projected_end=projected_end, planned=planned)
    with transaction.atomic():
        wo = _lock_work_order(work_order_id)
        ops = _lock_operations(wo)
        move = _moves(wo, ops, write, tolerance_seconds)
        if move is None:
            return False
        for op in move.moved_operations:
            # Not a change of the operation's state: its version (stale-edit checks on the
            # terminal) stays; the order's representation gets a new version below.
            op.save(update_fields=["planned_start", "planned_end"])
        _save_work_order(wo, ops, "projected_end", "at_risk", emit=False)
        if move.end_moved:
            _reschedule_audit(move, reason, at).save()
            record_events([_schedule_changed(move, reason)])
        return True


def _apply_one_by_one(
    writes: list[ScheduleWrite], *, reason: str, at: datetime, tolerance_seconds: float
) -> int:
    return sum(
        apply_schedule(
            w.work_order_id,
            projected_end=w.projected_end,
            planned=w.planned,
            reason=reason,
            at=at,
            tolerance_seconds=tolerance_seconds,
        )
        for w in writes
    )


def apply_schedules(
    writes: list[ScheduleWrite],
    *,
    reason: str,
    at: datetime | None = None,
    tolerance_seconds: float = 0,
    chunk: int | None = None,
) -> int:
    """:func:`apply_schedule` for many orders, with set-based writes: per chunk of orders one
    transaction that locks them (and then their operations) in the services' lock order and
    writes each table with one statement, giving exactly the rows one
    :func:`apply_schedule` per order would, in the same order. Returns how many orders
    changed."""
    at = _when(at)
    chunk = chunk or settings.MES_SCHEDULE_WRITE_CHUNK
    return sum(
        _apply_chunk(writes[i : i + chunk], reason=reason, at=at, tolerance=tolerance_seconds)
        for i in range(0, len(writes), chunk)
    )


# What the writer reads of the locked rows: what it changes and what the representation
# shows (a field missing here still works, at one query per row: keep them in step).
REPRESENTED_ORDER_FIELDS = (
    *("number", "product", "routing", "quantity", "due_date", "priority", "status"),
    *("quantity_good", "quantity_scrap", "actual_start", "actual_end"),
    *("projected_end", "at_risk", "version"),
)
REPRESENTED_OPERATION_FIELDS = (
    *("work_order", "sequence", "name", "work_center", "machine", "status"),
    *("quantity_good", "quantity_scrap", "planned_start", "planned_end"),
    *("actual_start", "actual_end"),
)


def _apply_chunk(writes: list[ScheduleWrite], *, reason: str, at: datetime, tolerance: float):
    with transaction.atomic():
        ids = sorted({w.work_order_id for w in writes})
        orders = {
            wo.pk: wo
            for wo in WorkOrder.objects.select_for_update()
            .only(*REPRESENTED_ORDER_FIELDS)
            .filter(pk__in=ids)
            .order_by("pk")
        }
        operations: dict[int, list[Operation]] = {pk: [] for pk in orders}
        for op in (
            Operation.objects.select_for_update()
            .only(*REPRESENTED_OPERATION_FIELDS)
            .filter(work_order_id__in=ids)
            .order_by("work_order_id", "sequence")
        ):
            operations[op.work_order_id].append(op)
        share_related(orders.values(), operations.values())
        moves = []
        for write in writes:  # in the caller's order: the order the rows are written in
            wo = orders.get(write.work_order_id)
            if wo is not None:
                move = _moves(wo, operations[wo.pk], write, tolerance)
                if move is not None:
                    moves.append(move)
        if not moves:
            return 0
        update_rows(
            Operation,
            [op for move in moves for op in move.moved_operations],
            ["planned_start", "planned_end"],
        )
        for move, when in zip(moves, clock.next_times(clock.WORK_ORDERS, len(moves)), strict=True):
            wo = move.work_order
            wo.version += 1
            wo.updated_at = when
            wo.rendered = render_json(work_order_representation(wo, move.operations))
        update_rows(
            WorkOrder,
            [move.work_order for move in moves],
            ["projected_end", "at_risk", "version", "updated_at", "rendered"],
        )
        ended = [move for move in moves if move.end_moved]
        insert_rows(AuditRecord, [_reschedule_audit(move, reason, at) for move in ended])
        record_events([_schedule_changed(move, reason) for move in ended])
        return len(moves)


# --- When to re-plan ---------------------------------------------------------------------------


def _capacity_key() -> str:
    rows = Machine.objects.filter(is_active=True).order_by("pk").values_list("pk", "work_center_id")
    return hashlib.sha1(repr(list(rows)).encode(), usedforsecurity=False).hexdigest()


def newest_trigger() -> int:
    """The newest audit record that wakes the planner (what a plan is up to date with)."""
    return _triggers().aggregate(m=Max("id"))["m"] or 0


def describe_triggers(after: int, upto: int, *, limit: int = 3) -> str:
    """What happened between two audit ids, newest first: "M-3 down; WO-1004 rush"."""
    records = list(
        _triggers()
        .filter(id__gt=after, id__lte=upto)
        .order_by("-id")
        .values_list("entity_type", "entity_label", "action", "to_state")[: limit + 1]
    )
    parts = []
    for entity_type, label, action, to_state in records[:limit]:
        if entity_type == EntityType.MACHINE and action == "set_state":
            parts.append(f"{label} {to_state}")
        else:
            parts.append(f"{label} {action.replace('_', ' ')}")
    text = "; ".join(parts)
    if len(records) > limit:
        text += "; …"
    return text


def replan_if_needed(*, now: datetime | None = None) -> ReplanSummary | None:
    """Re-plan when something changed since the last plan, or the plan is getting old.
    Returns None when there was nothing to do."""
    now = now or timezone.now()
    with transaction.atomic():
        state, _ = ScheduleState.objects.select_for_update().get_or_create(pk=1)
        if state.lease_until is not None and state.lease_until > now:
            return None  # another worker is planning; what it missed wakes the next check
        newest, capacity, calendar = newest_trigger(), _capacity_key(), calendar_fingerprint()
        stale = state.planned_at is None or now - state.planned_at >= timedelta(
            seconds=settings.MES_SCHEDULE_REFRESH_SECONDS
        )
        if (newest, capacity, calendar) == (
            state.audit_watermark,
            state.capacity_key,
            state.calendar_key,
        ) and not stale:
            return None
        reasons = []
        if newest != state.audit_watermark:
            reasons.append(describe_triggers(state.audit_watermark, newest))
        if capacity != state.capacity_key and state.capacity_key:
            reasons.append("machines changed")
        if calendar != state.calendar_key and state.calendar_key:
            reasons.append("shift calendar changed")
        reason = "; ".join(r for r in reasons if r) or "the clock moved on"
        state.audit_watermark, state.capacity_key = newest, capacity
        state.calendar_key = calendar
        state.planned_at, state.reason = now, reason[:300]
        state.lease_until = now + LEASE
        state.save()
    summary = None
    try:
        summary = replan(reason=reason, now=now)
    finally:
        done = {"last_replan_seconds": summary.seconds} if summary is not None else {}
        ScheduleState.objects.filter(pk=1).update(lease_until=None, **done)
    if summary.changed:
        logger.info(
            "Re-planned %d orders (%d changed) in %.0f ms: %s",
            summary.orders,
            summary.changed,
            summary.seconds * 1000,
            reason,
        )
    return summary
