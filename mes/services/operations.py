"""Operations on the floor: start on a machine, pause, resume, report quantities and
complete, each with the ERP's production confirmation where time or quantities moved."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext as _

from erp_sync.models import EventType
from erp_sync.outbox import record_event

from .. import clock
from ..choices import EntityType
from ..errors import Conflict, InvalidTransition, ValidationFailed
from ..formats import display_quantity, iso_utc, quantity
from ..models import ConfirmationKind, Machine, Operation, ProductionConfirmation, WorkOrder
from ..performance import rollups
from ..quality import selectors as quality
from ..statemachine import OPERATION_COUNTING
from .common import (
    PAST_TENSE,
    WO,
    Actor,
    ActorLike,
    Op,
    _check_version,
    _close_run,
    _lock_operation,
    _move,
    _require_active_work_order,
    _require_reason,
    _save_operation,
    _save_work_order,
    _seconds_between,
    _to_quantity,
    _when,
    write_audit,
)


def _refuse_while_held(op: Operation, verb: str) -> None:
    holds = list(quality.open_holds(operation=op).values_list("number", flat=True))
    if holds:
        raise InvalidTransition(
            _(
                "%(op)s is on quality hold (%(nc)s); it cannot be %(verb)s until a supervisor "
                "signs the disposition."
            )
            % {"op": op.label, "nc": ", ".join(holds), "verb": PAST_TENSE.get(verb, verb)},
            errors={"status": ["Held by an open nonconformance."]},
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
        "scrap_reasons": c.scrap_reasons,
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
    scrap_reasons: list[dict] | None = None,
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
        scrap_reasons=scrap_reasons or [],
        occurred_at=at,
    )
    record_event(
        event_type=EventType.CONFIRMATION_CREATED,
        aggregate_key=wo.number,
        data=confirmation_representation(confirmation, wo.number),
        occurred_at=at,
    )
    if good or scrap:  # the units count in the machine's performance (OEE)
        rollups.record_count(op, good=good, scrap=scrap, at=at)
    return confirmation


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
        _refuse_while_held(op, "resume")
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
    scrap_reason: str = "",
    at: datetime | None = None,
    expected_version: int | None = None,
) -> Operation:
    """Add good and scrap quantities (deltas) to a running or paused operation. Negative
    deltas correct an earlier report and need a reason; totals never go below zero.
    ``scrap_reason`` is a scrap reason's code, sent to the ERP with the scrap."""
    actor, at = Actor.of(actor), _when(at)
    good_delta, scrap_delta = _to_quantity(good, "good"), _to_quantity(scrap, "scrap")
    scrap_reason = (scrap_reason or "").strip()
    if scrap_reason and not scrap_delta:
        raise ValidationFailed.field(
            "scrap_reason", _("A scrap reason goes with a scrap quantity.")
        )
    if scrap_reason and not quality.scrap_reason_exists(scrap_reason):
        raise ValidationFailed.field(
            "scrap_reason", _("Unknown scrap reason %(code)s.") % {"code": scrap_reason[:64]}
        )
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
            changes={**changes, **({"scrap_reason": scrap_reason} if scrap_reason else {})},
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
            scrap_reasons=(
                [{"code": scrap_reason, "quantity": quantity(scrap_delta)}] if scrap_reason else []
            ),
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
            _refuse_while_held(op, "complete")
            due = [d for d in quality.due_checks(op, completing=True, now=at) if d.mandatory]
            if due:
                raise InvalidTransition(
                    _("%(op)s cannot be completed: check due: %(checks)s.")
                    % {
                        "op": op.label,
                        "checks": "; ".join(f"{d.check.name}, {d.label}" for d in due[:5]),
                    },
                    errors={"checks": [f"{d.check.code} {d.sample.key}" for d in due]},
                )
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
