"""Every state change of the production domain, one function per transition.

Each service
- runs in one ``transaction.atomic()``,
- re-reads the rows it changes with ``select_for_update()`` (lock order: work order, then
  its operations by sequence, then a machine),
- checks the transition tables in :mod:`mes.statemachine` and the business rules,
- saves with ``update_fields``, writes one append-only :class:`~mes.models.AuditRecord` per
  changed entity state, and one ``work_order.updated`` outbox event per call,
- raises a :mod:`mes.errors` domain error on refusal, having changed nothing.

Views, the API, Celery tasks and the admin call these; nothing else writes these fields.
Services return the fresh, locked instance: callers' instances are stale afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from erp_sync.models import EventType
from erp_sync.outbox import record_event

from . import clock
from .choices import EntityType, MachineState, OperationStatus, Priority, WorkOrderStatus
from .errors import Conflict, InvalidTransition, StaleObject, ValidationFailed
from .formats import display_quantity, iso_utc, quantity
from .models import (
    CODE_VALIDATOR,
    QUANTITY,
    AuditRecord,
    ConfirmationKind,
    Machine,
    Operation,
    Product,
    ProductionConfirmation,
    Routing,
    WorkOrder,
)
from .scheduling.engine import is_at_risk
from .selectors import render_json, work_order_representation
from .statemachine import (
    OPERATION_COUNTING,
    WORK_ORDER_ACTIVE,
    WORK_ORDER_TERMINAL,
    operation_may,
    work_order_may,
)

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

# Participles for messages ("... cannot be released", "... was completed by Ana at 10:42").
# Refusals are shown to operators, so they are translated (in the request's language).
PAST_TENSE = {
    "create": gettext_lazy("created"),
    "update": gettext_lazy("updated"),
    "release": gettext_lazy("released"),
    "hold": gettext_lazy("put on hold"),
    "cancel": gettext_lazy("cancelled"),
    "ready": gettext_lazy("made ready"),
    "start": gettext_lazy("started"),
    "pause": gettext_lazy("paused"),
    "resume": gettext_lazy("resumed"),
    "complete": gettext_lazy("completed"),
    "report_quantity": gettext_lazy("given a quantity report"),
    "set_state": gettext_lazy("changed"),
    "count": gettext_lazy("counted"),
    "downtime_reason": gettext_lazy("given a downtime reason"),
    "reschedule": gettext_lazy("rescheduled"),
}


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


def _last_change(entity_type: str, entity_id: int) -> AuditRecord | None:
    if entity_type == EntityType.WORK_ORDER:
        # A work order's version moves with every change of its operations too.
        records = AuditRecord.objects.filter(work_order_id=entity_id)
    else:
        records = AuditRecord.objects.filter(entity_type=entity_type, entity_id=entity_id)
    return records.order_by("-occurred_at", "-id").first()


def describe_last_change(entity_type: str, entity_id: int, label: str) -> str:
    """E.g. "WO-1001 op 20 was completed by Ana Lopez at 10:42"."""
    record = _last_change(entity_type, entity_id)
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


def write_audit(
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
    return AuditRecord.objects.create(
        occurred_at=at,
        actor=actor.user,
        actor_name=actor.name[:150],
        entity_type=entity_type,
        entity_id=entity_id,
        entity_label=entity_label,
        work_order=work_order,
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


def _lock_free_machine(machine: Machine, op: Operation) -> Machine:
    machine = Machine.objects.select_for_update().get(pk=machine.pk)
    busy = (
        Operation.objects.filter(machine=machine, status=Op.RUNNING)
        .exclude(pk=op.pk)
        .select_related("work_order")
        .first()
    )
    if busy is not None:
        raise Conflict(
            _("Machine %(machine)s is busy with %(op)s. Pause or complete that first.")
            % {"machine": machine.code, "op": busy.label},
            errors={"machine": [f"Busy with {busy.label}."]},
        )
    return machine


def _choose_machine(op: Operation, machine: Machine | None) -> Machine | None:
    candidates = list(Machine.objects.filter(work_center_id=op.work_center_id, is_active=True))
    if machine is not None:
        if machine.pk not in {m.pk for m in candidates}:
            raise ValidationFailed.field(
                "machine",
                _("Machine %(machine)s is not in work center %(wc)s.")
                % {"machine": machine.code, "wc": op.work_center.code},
            )
        return machine
    if len(candidates) > 1:
        codes = ", ".join(sorted(m.code for m in candidates))
        raise ValidationFailed.field(
            "machine",
            _("Choose a machine for %(op)s: %(codes)s.") % {"op": op.label, "codes": codes},
        )
    return candidates[0] if candidates else None


def _recompute_work_order_quantities(wo: WorkOrder, ops: list[Operation]) -> None:
    """The order's good quantity is its last (not cancelled) operation's; scrap is the sum."""
    live = [op for op in ops if op.status != Op.CANCELLED] or ops
    wo.quantity_good = live[-1].quantity_good if live else Decimal(0)
    wo.quantity_scrap = sum((op.quantity_scrap for op in ops), Decimal(0))


def _to_quantity(value: Any, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationFailed.field(
            field, _("%(value)r is not a number.") % {"value": value}
        ) from None
    if not number.is_finite():
        raise ValidationFailed.field(field, _("Enter a finite number."))
    if abs(number) >= MAX_QUANTITY:  # before quantize(), which fails on huge numbers
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


def _take_confirmation(op: Operation, at: datetime) -> Decimal:
    """Running seconds since the previous confirmation; marks them as confirmed (the caller
    saves ``confirmed_run_seconds``)."""
    total = op.run_seconds
    if op.running_since is not None:
        total += _seconds_between(op.running_since, at)
    delta = max(Decimal(0), total - op.confirmed_run_seconds)
    op.confirmed_run_seconds = max(total, op.confirmed_run_seconds)
    return delta


def confirmation_representation(c: ProductionConfirmation, work_order_number: str) -> dict:
    return {
        "seq": c.seq,
        "id": str(c.uuid),
        "work_order": work_order_number,
        "operation_sequence": c.operation_sequence,
        "kind": c.kind,
        "quantity_good": quantity(c.quantity_good),
        "quantity_scrap": quantity(c.quantity_scrap),
        "labor_seconds": quantity(c.labor_seconds),
        "machine_seconds": quantity(c.machine_seconds),
        "materials": c.materials,
        "occurred_at": iso_utc(c.occurred_at),
    }


def _write_confirmation(
    wo: WorkOrder,
    op: Operation,
    *,
    kind: str,
    good: Decimal,
    scrap: Decimal,
    seconds: Decimal,
    at: datetime,
) -> ProductionConfirmation:
    """Append a confirmation and its ``confirmation.created`` event. Takes the gap-free
    sequence number, so call it after ``_save_work_order`` (lock order: the orders' clock,
    then the confirmations' clock)."""
    # One operator attends one machine in this model, so labour time equals machine time.
    confirmation = ProductionConfirmation.objects.create(
        seq=clock.next_value(clock.CONFIRMATIONS),
        work_order=wo,
        operation=op,
        operation_sequence=op.sequence,
        kind=kind,
        quantity_good=good,
        quantity_scrap=scrap,
        labor_seconds=seconds,
        machine_seconds=seconds,
        materials=[],
        occurred_at=at,
    )
    record_event(
        event_type=EventType.CONFIRMATION_CREATED,
        aggregate_key=wo.number,
        data=confirmation_representation(confirmation, wo.number),
        occurred_at=at,
    )
    return confirmation


# --- Work orders ------------------------------------------------------------------------------


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
            raise Conflict(f"Work order {number} already exists.", errors={"number": ["Taken."]})
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
            back_to = wo.held_from_status or WO.RELEASED
            _move(wo, back_to, action="release", actor=actor, at=at, reason=reason)
            wo.held_from_status = ""
            _save_work_order(wo, None, "status", "held_from_status")
        else:
            _move(wo, WO.RELEASED, action="release", actor=actor, at=at)  # raises
        return wo


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


# --- Operations -------------------------------------------------------------------------------


def start_operation(
    operation: Operation,
    *,
    operator: ActorLike,
    machine: Machine | None = None,
    at: datetime | None = None,
    expected_version: int | None = None,
) -> Operation:
    """ready -> running on a machine of the operation's work center. Starting the first
    operation puts the work order in progress."""
    actor, at = Actor.of(operator), _when(at)
    with transaction.atomic():
        wo, ops, op = _lock_operation(operation)
        _check_version(EntityType.OPERATION, op, expected_version, op.label)
        _require_active_work_order(wo, op, "start")
        if op.status == Op.PENDING:
            previous = [o for o in ops if o.sequence < op.sequence and o.status != Op.DONE]
            if previous:
                waiting = _("op %(sequence)s is not done yet") % {"sequence": previous[-1].sequence}
            else:
                waiting = _("not ready")
            raise InvalidTransition(
                _("%(op)s cannot be started: %(why)s.") % {"op": op.label, "why": waiting},
                errors={"status": [f"{op.status} -> running is not allowed."]},
            )
        if op.status != Op.READY:
            hint = _("resume it instead") if op.status == Op.PAUSED else _("it cannot be started")
            raise InvalidTransition(
                _("%(op)s is %(status)s; %(hint)s.")
                % {"op": op.label, "status": op.get_status_display().lower(), "hint": hint},
                errors={"status": [f"{op.status} -> running by start is not allowed."]},
            )
        chosen = _choose_machine(op, machine)
        if chosen is not None:
            chosen = _lock_free_machine(chosen, op)
        _move(
            op,
            Op.RUNNING,
            action="start",
            actor=actor,
            at=at,
            changes={"machine": chosen.code if chosen else None},
        )
        op.machine = chosen
        op.actual_start = op.actual_start or at
        op.last_operator = actor.user
        op.running_since = at
        _save_operation(op, "status", "machine", "actual_start", "last_operator", "running_since")
        fields = []
        if wo.status == WO.RELEASED:
            _move(wo, WO.IN_PROGRESS, action="start", actor=actor, at=at)
            wo.actual_start = at
            fields = ["status", "actual_start"]
        _save_work_order(wo, ops, *fields)
        return op


def pause_operation(
    operation: Operation,
    *,
    actor: ActorLike,
    reason: str,
    at: datetime | None = None,
    expected_version: int | None = None,
) -> Operation:
    """running -> paused, with a reason."""
    actor, at = Actor.of(actor), _when(at)
    reason = _require_reason(reason, _("pause an operation"))
    with transaction.atomic():
        wo, ops, op = _lock_operation(operation)
        _check_version(EntityType.OPERATION, op, expected_version, op.label)
        _move(op, Op.PAUSED, action="pause", actor=actor, at=at, reason=reason)
        _close_run(op, at)
        _save_operation(op, "status", "run_seconds", "running_since")
        _save_work_order(wo, ops)
        return op


def resume_operation(
    operation: Operation,
    *,
    actor: ActorLike,
    at: datetime | None = None,
    expected_version: int | None = None,
) -> Operation:
    """paused -> running, on the same machine, which must be free."""
    actor, at = Actor.of(actor), _when(at)
    with transaction.atomic():
        wo, ops, op = _lock_operation(operation)
        _check_version(EntityType.OPERATION, op, expected_version, op.label)
        _require_active_work_order(wo, op, "resume")
        if op.status != Op.PAUSED:  # ready -> running is start_operation's (machine, start)
            hint = _("start it instead") if op.status == Op.READY else _("it cannot be resumed")
            raise InvalidTransition(
                _("%(op)s is %(status)s; %(hint)s.")
                % {"op": op.label, "status": op.get_status_display().lower(), "hint": hint},
                errors={"status": [f"{op.status} -> running by resume is not allowed."]},
            )
        if op.machine_id is not None:
            _lock_free_machine(op.machine, op)
        _move(op, Op.RUNNING, action="resume", actor=actor, at=at)
        op.last_operator = actor.user
        op.running_since = at
        _save_operation(op, "status", "last_operator", "running_since")
        _save_work_order(wo, ops)
        return op


def report_quantity(
    operation: Operation,
    *,
    actor: ActorLike,
    good: Decimal | int | str = 0,
    scrap: Decimal | int | str = 0,
    reason: str = "",
    at: datetime | None = None,
    expected_version: int | None = None,
) -> Operation:
    """Add good and scrap quantities (deltas) to a running or paused operation. Negative
    deltas correct an earlier report and need a reason; totals never go below zero."""
    actor, at = Actor.of(actor), _when(at)
    good_delta, scrap_delta = _to_quantity(good, "good"), _to_quantity(scrap, "scrap")
    if good_delta == 0 and scrap_delta == 0:
        raise ValidationFailed(
            _("Enter a good or scrap quantity."),
            errors={"good": ["Enter a quantity."], "scrap": ["Enter a quantity."]},
        )
    if (good_delta < 0 or scrap_delta < 0) and not reason.strip():
        raise ValidationFailed.field(
            "reason", _("A correction (negative quantity) needs a reason.")
        )
    with transaction.atomic():
        wo, ops, op = _lock_operation(operation)
        _check_version(EntityType.OPERATION, op, expected_version, op.label)
        _require_active_work_order(wo, op, "count")
        if op.status not in OPERATION_COUNTING:
            raise InvalidTransition(
                _(
                    "%(op)s is %(status)s; quantities can be reported only while it is "
                    "running or paused."
                )
                % {"op": op.label, "status": op.get_status_display().lower()},
                errors={"status": [f"Operation status is {op.status}."]},
            )
        new_good, new_scrap = op.quantity_good + good_delta, op.quantity_scrap + scrap_delta
        errors = {}
        if new_good < 0:
            errors["good"] = [
                _("Only %(n)s good reported so far.") % {"n": display_quantity(op.quantity_good)}
            ]
        if new_scrap < 0:
            errors["scrap"] = [
                _("Only %(n)s scrap reported so far.") % {"n": display_quantity(op.quantity_scrap)}
            ]
        if errors:
            raise ValidationFailed(_("A total cannot go below zero."), errors=errors)
        changes = {}
        if good_delta:
            changes["quantity_good"] = [
                display_quantity(op.quantity_good),
                display_quantity(new_good),
            ]
        if scrap_delta:
            changes["quantity_scrap"] = [
                display_quantity(op.quantity_scrap),
                display_quantity(new_scrap),
            ]
        op.quantity_good, op.quantity_scrap = new_good, new_scrap
        write_audit(
            actor,
            entity_type=EntityType.OPERATION,
            entity_id=op.pk,
            entity_label=op.label,
            work_order=wo,
            action="report_quantity",
            at=at,
            changes=changes,
            reason=reason.strip(),
        )
        seconds = _take_confirmation(op, at)
        _save_operation(op, "quantity_good", "quantity_scrap", "confirmed_run_seconds")
        _recompute_work_order_quantities(wo, ops)
        _save_work_order(wo, ops, "quantity_good", "quantity_scrap")
        _write_confirmation(
            wo,
            op,
            kind=ConfirmationKind.PROGRESS,
            good=good_delta,
            scrap=scrap_delta,
            seconds=seconds,
            at=at,
        )
        return op


def complete_operation(
    operation: Operation,
    *,
    actor: ActorLike,
    at: datetime | None = None,
    expected_version: int | None = None,
) -> Operation:
    """running|paused -> done. The next operation becomes ready; completing the last one
    completes the work order."""
    actor, at = Actor.of(actor), _when(at)
    with transaction.atomic():
        wo, ops, op = _lock_operation(operation)
        _check_version(EntityType.OPERATION, op, expected_version, op.label)
        if op.status in OPERATION_COUNTING:
            _require_active_work_order(wo, op, "complete")
        _move(
            op,
            Op.DONE,
            action="complete",
            actor=actor,
            at=at,
            changes={
                "quantity_good": display_quantity(op.quantity_good),
                "quantity_scrap": display_quantity(op.quantity_scrap),
            },
        )
        op.actual_end = at
        _close_run(op, at)
        seconds = _take_confirmation(op, at)
        _save_operation(
            op, "status", "actual_end", "run_seconds", "running_since", "confirmed_run_seconds"
        )
        following = [o for o in ops if o.sequence > op.sequence and o.status == Op.PENDING]
        fields: list[str] = []
        if following:
            nxt = following[0]
            nxt.work_order = wo
            _move(nxt, Op.READY, action="ready", actor=actor, at=at)
            _save_operation(nxt, "status")
        elif all(o.status in (Op.DONE, Op.CANCELLED) for o in ops):
            _move(wo, WO.COMPLETED, action="complete", actor=actor, at=at)
            wo.actual_end = at
            fields = ["status", "actual_end"]
        _recompute_work_order_quantities(wo, ops)
        _save_work_order(wo, ops, "quantity_good", "quantity_scrap", *fields)
        _write_confirmation(
            wo,
            op,
            kind=ConfirmationKind.FINAL,
            good=Decimal(0),
            scrap=Decimal(0),
            seconds=seconds,
            at=at,
        )
        return op


# --- The live schedule ------------------------------------------------------------------------

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
            if op.status in (Op.DONE, Op.CANCELLED):
                continue
            start, end = planned.get(op.pk, (None, None))
            if moved_beyond(op.planned_start, start, tolerance_seconds) or moved_beyond(
                op.planned_end, end, tolerance_seconds
            ):
                op.planned_start, op.planned_end = start, end
                moved_ops.append(op)
        at_risk = is_at_risk(projected_end, wo.due_date)
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


# --- Machines ---------------------------------------------------------------------------------


def set_machine_state(
    machine: Machine,
    *,
    state: str,
    actor: ActorLike,
    at: datetime | None = None,
    reason: str = "",
) -> bool:
    """Record a machine state change. Returns False, writing nothing, when the machine is
    already in that state (pollers report the same state over and over)."""
    actor, at = Actor.of(actor), _when(at)
    if state not in MachineState.values:
        raise ValidationFailed.field("state", f"Unknown machine state {state!r}.")
    with transaction.atomic():
        locked = Machine.objects.select_for_update().get(pk=machine.pk)
        if locked.state == state:
            return False
        from_state = locked.state
        locked.state, locked.state_since = state, at
        locked.save(update_fields=["state", "state_since"])
        write_audit(
            actor,
            entity_type=EntityType.MACHINE,
            entity_id=locked.pk,
            entity_label=locked.code,
            work_order=None,
            action="set_state",
            at=at,
            from_state=from_state,
            to_state=state,
            reason=reason,
        )
        machine.state, machine.state_since = state, at
        return True


# --- Master data with rules -------------------------------------------------------------------


def activate_routing(routing: Routing) -> Routing:
    """Make ``routing`` the product's active routing; its other routings become inactive."""
    with transaction.atomic():
        siblings: Iterable[Routing] = Routing.objects.select_for_update().filter(
            product_id=routing.product_id
        )
        for other in siblings:
            if other.pk != routing.pk and other.active:
                other.active = False
                other.save(update_fields=["active"])
        routing.active = True
        routing.save()
        return routing
