"""What every production service shares: who acts, the audit record, row locks in the
services' lock order, versioned saves and the checks that come before a transition.

Not the services' public API (callers import from :mod:`mes.services`): the services'
modules and the live schedule's writer (:func:`mes.scheduling.services.apply_schedule`)
build on these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from erp_sync.models import EventType
from erp_sync.outbox import record_event

from .. import clock
from ..choices import PAST_TENSE, EntityType, OperationStatus, WorkOrderStatus
from ..errors import InvalidTransition, StaleObject, ValidationFailed
from ..formats import parse_decimal
from ..models import (
    QUANTITY,
    AuditRecord,
    Machine,
    Operation,
    Product,
    Routing,
    WorkCenter,
    WorkOrder,
)
from ..selectors import render_json, work_order_representation
from ..statemachine import WORK_ORDER_ACTIVE, operation_may, work_order_may

Op = OperationStatus
WO = WorkOrderStatus
MAX_QUANTITY = Decimal(10) ** (QUANTITY["max_digits"] - QUANTITY["decimal_places"])


# --- Who acts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who performs a change: a signed-in user, or a system (ERP client, PLC poller)."""

    name: str
    user: AbstractBaseUser | None = None

    @classmethod
    def of(cls, who: ActorLike) -> Actor:
        if isinstance(who, Actor):
            return who
        full_name = who.get_full_name() if hasattr(who, "get_full_name") else ""
        return cls(name=full_name or who.get_username(), user=who)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(name=name)


ActorLike = Actor | AbstractBaseUser

# --- Internals --------------------------------------------------------------------------------


def _when(at: datetime | None) -> datetime:
    if at is None:
        return timezone.now()
    if timezone.is_naive(at):
        raise ValidationFailed.field("at", "Times must carry a time zone.")
    return at


def _require_reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed.field(
            "reason", _("A reason is required to %(what)s.") % {"what": what}
        )
    return reason


def _lock_work_order(pk: int) -> WorkOrder:
    return (
        WorkOrder.objects.select_for_update(of=("self",))
        .select_related("product", "routing")
        .get(pk=pk)
    )


def _lock_operations(work_order: WorkOrder) -> list[Operation]:
    return list(
        Operation.objects.select_for_update(of=("self",))
        .select_related("work_center", "machine")
        .filter(work_order=work_order)
        .order_by("sequence")
    )


def _lock_operation(operation: Operation) -> tuple[WorkOrder, list[Operation], Operation]:
    wo = _lock_work_order(operation.work_order_id)
    ops = _lock_operations(wo)
    for op in ops:
        if op.pk == operation.pk:
            op.work_order = wo
            return wo, ops, op
    raise Operation.DoesNotExist(f"Operation {operation.pk} no longer exists.")


def share_related(orders: Iterable[WorkOrder], operations: Iterable[list[Operation]]) -> None:
    """Give the locked rows their product, routing, work center and machine (what the
    representation names) from one query per table, instead of a join per locked row."""
    orders = list(orders)
    ops = [op for group in operations for op in group]
    products = Product.objects.in_bulk({wo.product_id for wo in orders})
    routings = Routing.objects.in_bulk({wo.routing_id for wo in orders})
    centers = WorkCenter.objects.in_bulk({op.work_center_id for op in ops})
    machines = Machine.objects.in_bulk({op.machine_id for op in ops if op.machine_id})
    for wo in orders:
        wo.product, wo.routing = products[wo.product_id], routings[wo.routing_id]
    for op in ops:
        op.work_center = centers[op.work_center_id]
        if op.machine_id is not None:
            op.machine = machines[op.machine_id]


def _last_change(entity_type: str, entity_id: int) -> AuditRecord | None:
    if entity_type == EntityType.WORK_ORDER:
        # A work order's version moves with every change of its operations too.
        records = AuditRecord.objects.filter(work_order_id=entity_id)
    else:
        records = AuditRecord.objects.filter(entity_type=entity_type, entity_id=entity_id)
    return records.order_by("-occurred_at", "-id").first()


def describe_last_change(entity_type: str, entity_id: int, label: str) -> str:
    """E.g. "WO-1001 op 20 was completed by Ana Lopez at 10:42"."""
    return describe_change(_last_change(entity_type, entity_id), label)


def describe_change(record: AuditRecord | None, label: str) -> str:
    """One audit record in words: "WO-1001 was put on hold by Sam Weber at 10:42"."""
    if record is None:
        return _("%(label)s was changed meanwhile") % {"label": label}
    verb = PAST_TENSE.get(record.action, record.action)
    when = date_format(timezone.localtime(record.occurred_at), "H:i")
    return _("%(label)s was %(verb)s by %(actor)s at %(when)s") % {
        "label": label,
        "verb": verb,
        "actor": record.actor_name,
        "when": when,
    }


def _check_version(entity_type: str, obj: WorkOrder | Operation, expected: int | None, label: str):
    if expected is not None and obj.version != expected:
        raise StaleObject(
            describe_last_change(entity_type, obj.pk, label)
            + ". "
            + _("Nothing was changed; look again."),
        )


def write_audit(actor: Actor, **fields: Any) -> AuditRecord:
    """Append an audit record (the fields of :func:`audit_record`)."""
    record = audit_record(actor, **fields)
    record.save()
    return record


def audit_record(
    actor: Actor,
    *,
    entity_type: str,
    entity_id: int,
    entity_label: str,
    work_order: WorkOrder | None,
    action: str,
    at: datetime,
    from_state: str = "",
    to_state: str = "",
    changes: dict[str, Any] | None = None,
    reason: str = "",
) -> AuditRecord:
    """An audit record not saved yet: for writers that insert many in one statement."""
    return AuditRecord(
        occurred_at=at,
        actor_id=actor.user.pk if actor.user is not None else None,
        actor_name=actor.name[:150],
        entity_type=entity_type,
        entity_id=entity_id,
        entity_label=entity_label,
        work_order_id=work_order.pk if work_order is not None else None,
        action=action,
        from_state=from_state,
        to_state=to_state,
        changes=changes or {},
        reason=reason,
    )


def _move(
    entity: WorkOrder | Operation,
    to: str,
    *,
    action: str,
    actor: Actor,
    at: datetime,
    reason: str = "",
    changes: dict[str, Any] | None = None,
) -> None:
    """Change a work order's or an operation's status if the transition table allows it,
    with its audit record; raise InvalidTransition otherwise."""
    if isinstance(entity, WorkOrder):
        allowed, kind, label, wo = work_order_may, EntityType.WORK_ORDER, entity.number, entity
    else:
        allowed, kind, label, wo = operation_may, EntityType.OPERATION, entity.label, None
    if not allowed(entity.status, to):
        raise InvalidTransition(
            _("%(label)s is %(status)s; it cannot be %(verb)s.")
            % {
                "label": label,
                "status": entity.get_status_display().lower(),
                "verb": PAST_TENSE.get(action, action),
            },
            errors={"status": [f"{entity.status} -> {to} is not allowed."]},
        )
    from_state, entity.status = entity.status, to
    write_audit(
        actor,
        entity_type=kind,
        entity_id=entity.pk,
        entity_label=label,
        work_order=wo or entity.work_order,
        action=action,
        at=at,
        from_state=from_state,
        to_state=to,
        reason=reason,
        changes=changes,
    )


def _save_operation(op: Operation, *fields: str) -> None:
    op.version += 1
    op.updated_at = timezone.now()
    op.save(update_fields=[*fields, "version", "updated_at"])


def _save_work_order(
    wo: WorkOrder, ops: list[Operation] | None, *fields: str, emit: bool = True
) -> dict:
    """Save the order (bumping version and updated_at even when only an operation changed,
    since the representation includes operations) and emit ``work_order.updated`` (unless
    ``emit`` is off: the scheduler sends ``schedule.changed`` instead). Returns the new
    representation."""
    wo.version += 1
    wo.updated_at = clock.next_time(clock.WORK_ORDERS)
    if ops is None:
        ops = list(wo.operations.select_related("work_center", "machine").order_by("sequence"))
    data = work_order_representation(wo, ops)
    # The representation is kept rendered on the row: the API serves it without rebuilding.
    wo.rendered = render_json(data)
    wo.save(update_fields=[*fields, "version", "updated_at", "rendered"])
    if emit:
        record_event(
            event_type=EventType.WORK_ORDER_UPDATED,
            aggregate_key=wo.number,
            data=data,
            occurred_at=wo.updated_at,
        )
    return data


def _require_active_work_order(wo: WorkOrder, op: Operation, verb: str) -> None:
    if wo.status not in WORK_ORDER_ACTIVE:
        raise InvalidTransition(
            _("%(op)s cannot be %(verb)s: %(wo)s is %(status)s.")
            % {
                "op": op.label,
                "verb": PAST_TENSE.get(verb, verb),
                "wo": wo.number,
                "status": wo.get_status_display().lower(),
            },
            errors={"work_order": [f"Work order status is {wo.status}."]},
        )


def _to_quantity(value: Any, field: str) -> Decimal:
    try:
        # Text as typed (ASCII digits, no exponent); numbers as they are.
        number = parse_decimal(value) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        number = None
    if number is None:
        raise ValidationFailed.field(
            field,
            _("%(value)r is not a number.")
            % {"value": value[:40] if isinstance(value, str) else value},
        )
    if not number.is_finite():
        raise ValidationFailed.field(field, _("Enter a finite number."))
    # adjusted() is the power of ten of the first digit, computed without arithmetic:
    # abs() and quantize() overflow the decimal context on 1e999999999.
    if number and number.adjusted() >= MAX_QUANTITY.adjusted():
        raise ValidationFailed.field(field, _("At most 11 digits before the decimal point."))
    if number != number.quantize(Decimal("0.001")):
        raise ValidationFailed.field(field, _("At most three decimal places."))
    return number


def _close_run(op: Operation, at: datetime) -> None:
    if op.running_since is not None:
        op.run_seconds += _seconds_between(op.running_since, at)
        op.running_since = None


def _seconds_between(start: datetime, end: datetime) -> Decimal:
    return max(Decimal(0), Decimal(str(round((end - start).total_seconds(), 3))))
