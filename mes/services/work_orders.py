"""Work orders: created and changed by the ERP, released (the routing copied into
operations), held and cancelled."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..choices import EntityType, Priority
from ..errors import AlreadyExists, Conflict, InvalidTransition, ValidationFailed
from ..formats import display_quantity
from ..models import CODE_VALIDATOR, Operation, Product, Routing, WorkOrder
from ..quality.plans import copy_checks
from ..quality.selectors import open_holds as quality_holds
from ..statemachine import WORK_ORDER_TERMINAL
from .common import (
    WO,
    Actor,
    ActorLike,
    Op,
    _check_version,
    _close_run,
    _lock_operations,
    _lock_work_order,
    _move,
    _require_reason,
    _save_operation,
    _save_work_order,
    _to_quantity,
    _when,
    write_audit,
)


def _resolve_routing(product: Product, routing: Routing | None) -> Routing:
    if routing is None:
        routing = Routing.objects.filter(product=product, active=True).first()
        if routing is None:
            raise ValidationFailed.field(
                "routing", f"Product {product.code} has no active routing; name one."
            )
    elif routing.product_id != product.pk:
        raise ValidationFailed.field(
            "routing", f"Routing {routing.code} does not make product {product.code}."
        )
    return routing


def _validate_work_order_fields(quantity: Decimal, due_date: datetime, priority: str) -> None:
    errors: dict[str, list[str]] = {}
    if quantity <= 0:
        errors["quantity"] = ["Quantity must be greater than zero."]
    if timezone.is_naive(due_date):
        errors["due_date"] = ["The due date must carry a time zone."]
    if priority not in Priority.values:
        errors["priority"] = [f"Priority must be one of {', '.join(Priority.values)}."]
    if errors:
        raise ValidationFailed("The work order is not valid.", errors=errors)


def create_work_order(
    *,
    number: str,
    product: Product,
    quantity: Decimal | int | str,
    due_date: datetime,
    actor: ActorLike,
    priority: str = Priority.NORMAL,
    routing: Routing | None = None,
    notes: str = "",
    release: bool = False,
    at: datetime | None = None,
) -> WorkOrder:
    """Create a planned work order (and release it when ``release``)."""
    actor, at = Actor.of(actor), _when(at)
    try:
        CODE_VALIDATOR(number)
    except Exception:
        raise ValidationFailed.field(
            "number", "Use 1-64 letters, digits, dots, underscores or hyphens."
        ) from None
    qty = _to_quantity(quantity, "quantity")
    _validate_work_order_fields(qty, due_date, priority)
    routing = _resolve_routing(product, routing)
    with transaction.atomic():
        if WorkOrder.objects.filter(number=number).exists():
            raise AlreadyExists(
                f"Work order {number} already exists.", errors={"number": ["Taken."]}
            )
        wo = WorkOrder.objects.create(
            number=number,
            product=product,
            routing=routing,
            quantity=qty,
            due_date=due_date,
            priority=priority,
            notes=notes,
            status=WO.PLANNED,
            created_at=at,
        )
        write_audit(
            actor,
            entity_type=EntityType.WORK_ORDER,
            entity_id=wo.pk,
            entity_label=wo.number,
            work_order=wo,
            action="create",
            at=at,
            to_state=WO.PLANNED,
            changes={
                "quantity": display_quantity(qty),
                "product": product.code,
                "routing": routing.code,
                "priority": priority,
            },
        )
        if release:
            return release_work_order(wo, actor=actor, at=at)
        _save_work_order(wo, [])
        return wo


def update_work_order(
    work_order: WorkOrder,
    *,
    actor: ActorLike,
    quantity: Decimal | int | str | None = None,
    due_date: datetime | None = None,
    priority: str | None = None,
    notes: str | None = None,
    product: Product | None = None,
    routing: Routing | None = None,
    expected_version: int | None = None,
    at: datetime | None = None,
) -> tuple[WorkOrder, bool]:
    """Change the ERP-owned fields of a work order. Returns ``(work_order, changed)``;
    sending the same values again changes nothing and emits no event."""
    actor, at = Actor.of(actor), _when(at)
    with transaction.atomic():
        wo = _lock_work_order(work_order.pk)
        _check_version(EntityType.WORK_ORDER, wo, expected_version, wo.number)
        new_qty = wo.quantity if quantity is None else _to_quantity(quantity, "quantity")
        new_due = wo.due_date if due_date is None else due_date
        new_priority = wo.priority if priority is None else priority
        _validate_work_order_fields(new_qty, new_due, new_priority)
        new_product = wo.product if product is None else product
        if routing is not None:
            new_routing = _resolve_routing(new_product, routing)
        elif new_product.pk != wo.product_id:
            new_routing = _resolve_routing(new_product, None)
        else:
            new_routing = wo.routing

        changes: dict[str, list[Any]] = {}
        if new_qty != wo.quantity:
            changes["quantity"] = [display_quantity(wo.quantity), display_quantity(new_qty)]
        if new_due != wo.due_date:
            changes["due_date"] = [wo.due_date.isoformat(), new_due.isoformat()]
        if new_priority != wo.priority:
            changes["priority"] = [wo.priority, new_priority]
        if notes is not None and notes != wo.notes:
            changes["notes"] = [wo.notes, notes]
        if new_product.pk != wo.product_id:
            changes["product"] = [wo.product.code, new_product.code]
        if new_routing.pk != wo.routing_id:
            changes["routing"] = [wo.routing.code, new_routing.code]
        if not changes:
            return wo, False

        if wo.status in WORK_ORDER_TERMINAL:
            raise Conflict(
                f"{wo.number} is {wo.get_status_display().lower()}; it can no longer be changed."
            )
        if "quantity" in changes and new_qty < wo.quantity_good:
            raise Conflict(
                f"{wo.number} has already produced {display_quantity(wo.quantity_good)}; "
                f"the quantity cannot go below that.",
                errors={"quantity": [f"At least {display_quantity(wo.quantity_good)}."]},
            )
        ops = _lock_operations(wo)
        started = wo.actual_start is not None or any(op.actual_start for op in ops)
        if ("product" in changes or "routing" in changes) and started:
            field = "product" if "product" in changes else "routing"
            raise Conflict(
                f"Production of {wo.number} has started; its {field} can no longer change.",
                errors={field: ["Production has started."]},
            )

        wo.quantity, wo.due_date, wo.priority = new_qty, new_due, new_priority
        wo.product, wo.routing = new_product, new_routing
        if notes is not None:
            wo.notes = notes
        write_audit(
            actor,
            entity_type=EntityType.WORK_ORDER,
            entity_id=wo.pk,
            entity_label=wo.number,
            work_order=wo,
            action="update",
            at=at,
            changes=changes,
        )
        if "routing" in changes and ops:
            # Released but nothing started: the copied steps follow the new routing. The old
            # operations never ran, so they are replaced; the audit record names the change.
            Operation.objects.filter(pk__in=[op.pk for op in ops]).delete()
            ops = _copy_routing(wo, actor=actor, at=at)
        _save_work_order(wo, ops, "quantity", "due_date", "priority", "notes", "product", "routing")
        return wo, True


def _copy_routing(wo: WorkOrder, *, actor: Actor, at: datetime) -> list[Operation]:
    steps = list(wo.routing.steps.select_related("work_center").order_by("sequence"))
    if not steps:
        raise ValidationFailed.field(
            "routing", f"Routing {wo.routing.code} has no steps; there is nothing to release."
        )
    ops = Operation.objects.bulk_create(
        [
            Operation(
                work_order=wo,
                sequence=step.sequence,
                name=step.name,
                work_center=step.work_center,
                setup_seconds=step.setup_seconds,
                cycle_seconds=step.cycle_seconds,
                instructions=step.instructions,
                status=Op.PENDING,
            )
            for step in steps
        ]
    )
    # bulk_create sets pks on PostgreSQL and SQLite >= 3.35; reload to be certain and locked.
    ops = _lock_operations(wo)
    copy_checks(wo.routing, ops)
    first = ops[0]
    first.work_order = wo
    _move(first, Op.READY, action="ready", actor=actor, at=at)
    _save_operation(first, "status")
    return ops


def release_work_order(
    work_order: WorkOrder,
    *,
    actor: ActorLike,
    reason: str = "",
    at: datetime | None = None,
    expected_version: int | None = None,
) -> WorkOrder:
    """planned -> released (copies the routing into operations, the first one ready), or
    on_hold -> the status the hold interrupted."""
    actor, at = Actor.of(actor), _when(at)
    with transaction.atomic():
        wo = _lock_work_order(work_order.pk)
        _check_version(EntityType.WORK_ORDER, wo, expected_version, wo.number)
        if wo.status == WO.PLANNED:
            _move(wo, WO.RELEASED, action="release", actor=actor, at=at, reason=reason)
            ops = _copy_routing(wo, actor=actor, at=at)
            _save_work_order(wo, ops, "status")
        elif wo.status == WO.ON_HOLD:
            holds = list(quality_holds(work_order=wo).values_list("number", flat=True))
            if holds:
                raise InvalidTransition(
                    _("%(wo)s is held by quality (%(nc)s); a signed disposition releases it.")
                    % {"wo": wo.number, "nc": ", ".join(holds)},
                    errors={"status": ["Held by an open nonconformance."]},
                )
            lift_hold(wo, actor=actor, at=at, reason=reason)
        else:
            _move(wo, WO.RELEASED, action="release", actor=actor, at=at)  # raises
        return wo


def lift_hold(wo: WorkOrder, *, actor: Actor, at: datetime, reason: str = "") -> None:
    """on_hold -> the status the hold interrupted, on a locked order. Callers decide
    whether the hold may end (a quality hold ends only through a disposition)."""
    back_to = wo.held_from_status or WO.RELEASED
    _move(wo, back_to, action="release", actor=actor, at=at, reason=reason)
    wo.held_from_status = ""
    _save_work_order(wo, None, "status", "held_from_status")


def hold_work_order(
    work_order: WorkOrder,
    *,
    actor: ActorLike,
    reason: str,
    at: datetime | None = None,
    expected_version: int | None = None,
) -> WorkOrder:
    """released|in_progress -> on_hold. Running operations are paused."""
    actor, at = Actor.of(actor), _when(at)
    reason = _require_reason(reason, _("put a work order on hold"))
    with transaction.atomic():
        wo = _lock_work_order(work_order.pk)
        _check_version(EntityType.WORK_ORDER, wo, expected_version, wo.number)
        from_status = wo.status
        _move(wo, WO.ON_HOLD, action="hold", actor=actor, at=at, reason=reason)
        wo.held_from_status = from_status
        ops = _lock_operations(wo)
        for op in ops:
            if op.status == Op.RUNNING:
                op.work_order = wo
                _move(
                    op,
                    Op.PAUSED,
                    action="pause",
                    actor=actor,
                    at=at,
                    reason=f"Work order on hold: {reason}",
                )
                _close_run(op, at)
                _save_operation(op, "status", "run_seconds", "running_since")
        _save_work_order(wo, ops, "status", "held_from_status")
        return wo


def cancel_work_order(
    work_order: WorkOrder,
    *,
    actor: ActorLike,
    reason: str,
    at: datetime | None = None,
    expected_version: int | None = None,
) -> WorkOrder:
    """planned|released|on_hold -> cancelled; open operations are cancelled with it."""
    actor, at = Actor.of(actor), _when(at)
    reason = _require_reason(reason, _("cancel a work order"))
    with transaction.atomic():
        wo = _lock_work_order(work_order.pk)
        _check_version(EntityType.WORK_ORDER, wo, expected_version, wo.number)
        _move(wo, WO.CANCELLED, action="cancel", actor=actor, at=at, reason=reason)
        ops = _lock_operations(wo)
        for op in ops:
            if op.status in (Op.PENDING, Op.READY, Op.PAUSED):
                op.work_order = wo
                _move(op, Op.CANCELLED, action="cancel", actor=actor, at=at, reason=reason)
                _save_operation(op, "status")
        _save_work_order(wo, ops, "status")
        return wo
