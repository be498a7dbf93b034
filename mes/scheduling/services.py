"""The live schedule: re-plan when the floor or the orders change, and write what moved.

:func:`replan_if_needed` runs every second (Celery beat). It re-plans when an audited change
happened since the last plan (a machine stopped, an operation started or finished, a rush
order arrived, an order was held), when the active machines or a shift calendar changed
(capacity), or when the
last plan is older than ``MES_SCHEDULE_REFRESH_SECONDS``. :func:`replan` computes the plan
with the pure :mod:`mes.scheduling.engine` from one snapshot and hands each order whose plan
moved to :func:`apply_schedule`, which writes it with its audit record and the
``schedule.changed`` event in one transaction.
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
from erp_sync.outbox import record_event
from mes.calendars.selectors import calendars_by_work_center
from mes.calendars.selectors import fingerprint as calendar_fingerprint
from mes.choices import EntityType, OperationStatus, WorkOrderStatus
from mes.formats import iso_utc
from mes.models import AuditRecord, Machine, Operation, ScheduleState, WorkOrder
from mes.services.common import (
    Actor,
    _lock_operations,
    _lock_work_order,
    _save_work_order,
    _when,
    write_audit,
)

from . import engine

logger = logging.getLogger(__name__)

SCHEDULED = (WorkOrderStatus.RELEASED, WorkOrderStatus.IN_PROGRESS)
OWN_ACTIONS = ("reschedule",)  # the scheduler's own audit records do not trigger a plan
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


def replan(*, reason: str = "", now: datetime | None = None) -> ReplanSummary:
    """Plan every released and in-progress order, and write the orders whose plan moved.
    Orders that left the schedule (held, completed, cancelled) lose their projection."""
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
    for wo in orders:
        if _unchanged(wo, plan, tolerance):
            continue
        planned = {
            op.pk: (plan.operations[op.pk].start, plan.operations[op.pk].end)
            for op in wo.operations.all()
            if op.pk in plan.operations
        }
        summary.changed += apply_schedule(
            wo.pk,
            projected_end=plan.projected_end.get(wo.pk),
            planned=planned,
            reason=reason,
            at=now,
            tolerance_seconds=tolerance,
        )
    left = (
        WorkOrder.objects.exclude(status__in=SCHEDULED)
        .filter(Q(projected_end__isnull=False) | Q(at_risk=True))
        .values_list("pk", flat=True)
    )
    for pk in left:
        summary.changed += apply_schedule(pk, projected_end=None, planned={}, reason=reason, at=now)
    summary.seconds = time.perf_counter() - started
    return summary


# --- Writing one order's plan -----------------------------------------------------------------

SCHEDULER = Actor.system("scheduler")


def moved_beyond(before: datetime | None, after: datetime | None, tolerance: float) -> bool:
    if before is None or after is None:
        return before is not after
    return abs((after - before).total_seconds()) > tolerance


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
    with transaction.atomic():
        wo = _lock_work_order(work_order_id)
        ops = _lock_operations(wo)
        moved_ops = []
        for op in ops:
            if op.status in (OperationStatus.DONE, OperationStatus.CANCELLED):
                continue
            start, end = planned.get(op.pk, (None, None))
            if moved_beyond(op.planned_start, start, tolerance_seconds) or moved_beyond(
                op.planned_end, end, tolerance_seconds
            ):
                op.planned_start, op.planned_end = start, end
                moved_ops.append(op)
        at_risk = engine.is_at_risk(projected_end, wo.due_date)
        previous, was_at_risk = wo.projected_end, wo.at_risk
        # Crossing the due date is a change however small the move.
        end_moved = (
            moved_beyond(previous, projected_end, tolerance_seconds) or at_risk != was_at_risk
        )
        if not (moved_ops or end_moved):
            return False
        for op in moved_ops:
            # Not a change of the operation's state: its version (stale-edit checks on the
            # terminal) stays; the order's representation gets a new version below.
            op.save(update_fields=["planned_start", "planned_end"])
        if end_moved:
            wo.projected_end, wo.at_risk = projected_end, at_risk
        _save_work_order(wo, ops, "projected_end", "at_risk", emit=False)
        if end_moved:
            write_audit(
                SCHEDULER,
                entity_type=EntityType.WORK_ORDER,
                entity_id=wo.pk,
                entity_label=wo.number,
                work_order=wo,
                action="reschedule",
                at=at,
                changes={
                    "projected_end": [iso_utc(previous), iso_utc(wo.projected_end)],
                    "at_risk": [was_at_risk, at_risk],
                },
                reason=reason[:500],
            )
            record_event(
                event_type=EventType.SCHEDULE_CHANGED,
                aggregate_key=wo.number,
                data={
                    "work_order": wo.number,
                    "projected_end": iso_utc(wo.projected_end),
                    "previous_projected_end": iso_utc(previous),
                    "at_risk": at_risk,
                    "reason": reason,
                },
                occurred_at=wo.updated_at,
            )
        return True


# --- When to re-plan ---------------------------------------------------------------------------


def _capacity_key() -> str:
    rows = Machine.objects.filter(is_active=True).order_by("pk").values_list("pk", "work_center_id")
    return hashlib.sha1(repr(list(rows)).encode(), usedforsecurity=False).hexdigest()


def _newest_trigger() -> int:
    return AuditRecord.objects.exclude(action__in=OWN_ACTIONS).aggregate(m=Max("id"))["m"] or 0


def describe_triggers(after: int, upto: int, *, limit: int = 3) -> str:
    """What happened between two audit ids, newest first: "M-3 down; WO-1004 rush"."""
    records = list(
        AuditRecord.objects.filter(id__gt=after, id__lte=upto)
        .exclude(action__in=OWN_ACTIONS)
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
        newest, capacity, calendar = _newest_trigger(), _capacity_key(), calendar_fingerprint()
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
    try:
        summary = replan(reason=reason, now=now)
    finally:
        ScheduleState.objects.filter(pk=1).update(lease_until=None)
    if summary.changed:
        logger.info(
            "Re-planned %d orders (%d changed) in %.0f ms: %s",
            summary.orders,
            summary.changed,
            summary.seconds * 1000,
            reason,
        )
    return summary
