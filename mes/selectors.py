"""Reads of the production domain: querysets with their joins, and the plain-data
representation of a work order that the ERP contract defines (used by the outbox and
the API alike)."""

from __future__ import annotations

import json

from django.db.models import Prefetch, QuerySet

from shopfloor.choices import PLC_ACTOR_PREFIX

from .choices import ActorKind, EntityType, OperationStatus, WorkOrderStatus
from .formats import iso_utc, quantity
from .history import RESCHEDULE, HistoryRow
from .models import AuditRecord, Machine, Operation, WorkOrder


def operations_prefetch() -> Prefetch:
    return Prefetch(
        "operations",
        queryset=Operation.objects.select_related("work_center", "machine").order_by("sequence"),
    )


def work_orders_with_operations() -> QuerySet[WorkOrder]:
    return WorkOrder.objects.select_related("product", "routing").prefetch_related(
        operations_prefetch()
    )


def work_order_list() -> QuerySet[WorkOrder]:
    return WorkOrder.objects.select_related("product").order_by("due_date", "number")


def actor_kind(actor_id: int | None, actor_name: str) -> str:
    """Who wrote an audit record: a person (signed in), a machine's PLC, or a system."""
    if actor_id is not None:
        return ActorKind.USER
    if actor_name.startswith(PLC_ACTOR_PREFIX):
        return ActorKind.PLC
    return ActorKind.SYSTEM


def work_order_history_rows(work_order: WorkOrder) -> list[HistoryRow]:
    """The order's audit records, oldest first, as plain rows for :mod:`mes.history` (one
    query, no model instances: a long-running order has thousands)."""
    records = work_order.audit_records.order_by("occurred_at", "id").values(
        "id",
        "occurred_at",
        "actor_id",
        "actor_name",
        "action",
        "entity_label",
        "from_state",
        "to_state",
        "changes",
        "reason",
    )
    return [
        HistoryRow(
            occurred_at=r["occurred_at"],
            actor_name=r["actor_name"],
            actor_kind=actor_kind(r["actor_id"], r["actor_name"]),
            action=r["action"],
            entity_label=r["entity_label"],
            from_state=r["from_state"],
            to_state=r["to_state"],
            changes=r["changes"] if isinstance(r["changes"], dict) else {},
            reason=r["reason"],
            id=r["id"],
        )
        for r in records
    ]


def last_change_of_work_order(work_order: WorkOrder, *, after: int) -> AuditRecord | None:
    """The newest change of the order itself (not of its operations, and not a re-plan)
    since the audit record ``after``: what makes a page of the order out of date."""
    return (
        work_order.audit_records.filter(entity_type=EntityType.WORK_ORDER, id__gt=after)
        .exclude(action=RESCHEDULE)
        .order_by("-occurred_at", "-id")
        .first()
    )


def current_operation(operations: list[Operation]) -> Operation | None:
    """The operation the floor is working on, or will next: the first one not finished."""
    for op in operations:
        if op.status not in (OperationStatus.DONE, OperationStatus.CANCELLED):
            return op
    return None


def _operation_summary(op: Operation) -> dict:
    return {
        "sequence": op.sequence,
        "name": op.name,
        "work_center": op.work_center.code,
        "machine": op.machine.code if op.machine_id else None,
        "status": op.status,
    }


def operation_representation(op: Operation) -> dict:
    return {
        **_operation_summary(op),
        "quantity_good": quantity(op.quantity_good),
        "quantity_scrap": quantity(op.quantity_scrap),
        "planned_start": iso_utc(op.planned_start),
        "planned_end": iso_utc(op.planned_end),
        "actual_start": iso_utc(op.actual_start),
        "actual_end": iso_utc(op.actual_end),
    }


def work_order_representation(wo: WorkOrder, operations: list[Operation] | None = None) -> dict:
    """The contract's work-order representation. ``operations`` ordered by sequence, with
    work center and machine loaded; fetched when not given."""
    if operations is None:
        operations = list(
            wo.operations.select_related("work_center", "machine").order_by("sequence")
        )
    current = current_operation(operations) if wo.status != WorkOrderStatus.CANCELLED else None
    return {
        "number": wo.number,
        "product": wo.product.code,
        "routing": wo.routing.code,
        "quantity": quantity(wo.quantity),
        "due_date": iso_utc(wo.due_date),
        "priority": wo.priority,
        "status": wo.status,
        "quantity_good": quantity(wo.quantity_good),
        "quantity_scrap": quantity(wo.quantity_scrap),
        "actual_start": iso_utc(wo.actual_start),
        "actual_end": iso_utc(wo.actual_end),
        "projected_end": iso_utc(wo.projected_end),
        "at_risk": wo.at_risk,
        "current_operation": _operation_summary(current) if current else None,
        "operations": [operation_representation(op) for op in operations],
        "updated_at": iso_utc(wo.updated_at),
    }


def render_json(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def rendered_work_order(wo: WorkOrder) -> str:
    """The stored rendering, or (for a row that predates it) a fresh one."""
    return wo.rendered or render_json(work_order_representation(wo))


def rerender_work_orders(queryset: QuerySet[WorkOrder], batch: int = 500) -> int:
    """Refresh the stored renderings (after a migration, a bulk import or a code change of
    master data). Returns how many rows were written."""
    count = 0
    ids = list(queryset.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), batch):
        rows = list(work_orders_with_operations().filter(pk__in=ids[start : start + batch]))
        for wo in rows:
            wo.rendered = render_json(work_order_representation(wo, list(wo.operations.all())))
        WorkOrder.objects.bulk_update(rows, ["rendered"])
        count += len(rows)
    return count


def machines_of_work_center(work_center_id: int) -> QuerySet[Machine]:
    return Machine.objects.filter(work_center_id=work_center_id, is_active=True).order_by("code")
