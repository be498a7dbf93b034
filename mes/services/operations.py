"""Operations on the floor: start on a machine, pause, resume, report quantities and
complete, each with the ERP's production confirmation where time or quantities moved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from erp_sync.models import EventType
from erp_sync.outbox import NewEvent, record_event, record_events

from .. import clock
from ..choices import EntityType
from ..errors import Conflict, DomainError, InvalidTransition, UnknownReference, ValidationFailed
from ..formats import display_quantity, iso_utc, quantity
from ..models import (
    AuditRecord,
    ConfirmationKind,
    Machine,
    Operation,
    ProductionConfirmation,
    WorkOrder,
)
from ..performance import rollups
from ..quality import selectors as quality
from ..selectors import render_json, work_order_representation
from ..statemachine import OPERATION_COUNTING
from .bulk import insert_rows, update_rows
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
    audit_record,
    share_related,
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
        rollups.add(rollups.count_rows(op, good=good, scrap=scrap, at=at))
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


def _check_report(
    good: Decimal | int | str, scrap: Decimal | int | str, reason: str, scrap_reason: str
) -> tuple[Decimal, Decimal, str]:
    """A report's deltas and scrap reason, checked before anything is locked."""
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
    return good_delta, scrap_delta, scrap_reason


def _count(
    wo: WorkOrder,
    ops: list[Operation],
    op: Operation,
    *,
    actor: Actor,
    good_delta: Decimal,
    scrap_delta: Decimal,
    reason: str,
    scrap_reason: str,
    at: datetime,
) -> tuple[AuditRecord, Decimal]:
    """Check a report against the locked order and operation and apply it to them in memory
    (quantities, confirmed running time, the order's totals); refuses having changed
    nothing. Returns the audit record to write and the confirmation's running seconds."""
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
        changes["quantity_good"] = [display_quantity(op.quantity_good), display_quantity(new_good)]
    if scrap_delta:
        changes["quantity_scrap"] = [
            display_quantity(op.quantity_scrap),
            display_quantity(new_scrap),
        ]
    if scrap_reason:
        changes["scrap_reason"] = scrap_reason
    op.quantity_good, op.quantity_scrap = new_good, new_scrap
    record = audit_record(
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
    _recompute_work_order_quantities(wo, ops)
    return record, seconds


def _scrap_reasons(scrap_reason: str, scrap_delta: Decimal) -> list[dict]:
    return [{"code": scrap_reason, "quantity": quantity(scrap_delta)}] if scrap_reason else []


COUNTED_FIELDS = ("quantity_good", "quantity_scrap", "confirmed_run_seconds")


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
    good_delta, scrap_delta, scrap_reason = _check_report(good, scrap, reason, scrap_reason)
    with transaction.atomic():
        wo, ops, op = _lock_operation(operation)
        _check_version(EntityType.OPERATION, op, expected_version, op.label)
        record, seconds = _count(
            wo,
            ops,
            op,
            actor=actor,
            good_delta=good_delta,
            scrap_delta=scrap_delta,
            reason=reason,
            scrap_reason=scrap_reason,
            at=at,
        )
        record.save()
        _save_operation(op, *COUNTED_FIELDS)
        _save_work_order(wo, ops, "quantity_good", "quantity_scrap")
        _write_confirmation(
            wo,
            op,
            kind=ConfirmationKind.PROGRESS,
            good=good_delta,
            scrap=scrap_delta,
            seconds=seconds,
            at=at,
            scrap_reasons=_scrap_reasons(scrap_reason, scrap_delta),
        )
        return op


@dataclass(frozen=True)
class QuantityReport:
    """One report of :func:`report_quantities`: what ``report_quantity`` takes."""

    operation_id: int
    actor: Actor
    good: Decimal | int | str = 0
    scrap: Decimal | int | str = 0
    reason: str = ""
    scrap_reason: str = ""


@dataclass
class _Counted:
    work_order: WorkOrder
    operation: Operation
    audit: AuditRecord
    data: dict  # the order's representation after this report (updated_at comes later)
    confirmation: ProductionConfirmation


def report_quantities(
    reports: Sequence[QuantityReport], *, at: datetime | None = None
) -> list[Operation | DomainError]:
    """``report_quantity`` for many operations in one transaction with set-based writes (a
    booking pass of PLC counts): each report is applied or refused on its own, exactly as one
    ``report_quantity`` per report in the given order would (the same audit records,
    confirmations with the same gap-free ``seq`` order, events and versions). Returns per
    report the operation it changed or the domain error that refused it."""
    at = _when(at)
    results: list[Operation | DomainError] = []
    with transaction.atomic():
        ids = {r.operation_id for r in reports}
        order_ids = set(
            Operation.objects.filter(pk__in=ids).values_list("work_order_id", flat=True)
        )
        orders = {
            wo.pk: wo
            for wo in WorkOrder.objects.select_for_update()
            .defer("notes", "rendered")
            .filter(pk__in=order_ids)
            .order_by("pk")
        }
        operations: dict[int, list[Operation]] = {pk: [] for pk in orders}
        by_id = {}
        for op in (
            Operation.objects.select_for_update()
            .defer("instructions")
            .filter(work_order_id__in=orders)
            .order_by("work_order_id", "sequence")
        ):
            op.work_order = orders[op.work_order_id]
            operations[op.work_order_id].append(op)
            by_id[op.pk] = op
        share_related(orders.values(), operations.values())
        counted: list[_Counted] = []
        for report in reports:
            op = by_id.get(report.operation_id)
            try:
                if op is None:
                    raise UnknownReference("operation", str(report.operation_id))
                wo = op.work_order
                good, scrap, scrap_reason = _check_report(
                    report.good, report.scrap, report.reason, report.scrap_reason
                )
                record, seconds = _count(
                    wo,
                    operations[wo.pk],
                    op,
                    actor=report.actor,
                    good_delta=good,
                    scrap_delta=scrap,
                    reason=report.reason,
                    scrap_reason=scrap_reason,
                    at=at,
                )
            except DomainError as exc:
                results.append(exc)
                continue
            op.version += 1
            wo.version += 1
            counted.append(
                _Counted(
                    wo,
                    op,
                    record,
                    work_order_representation(wo, operations[wo.pk]),
                    ProductionConfirmation(
                        work_order=wo,
                        operation=op,
                        operation_sequence=op.sequence,
                        kind=ConfirmationKind.PROGRESS,
                        quantity_good=good,
                        quantity_scrap=scrap,
                        labor_seconds=seconds,
                        machine_seconds=seconds,
                        materials=[],
                        scrap_reasons=_scrap_reasons(scrap_reason, scrap),
                        occurred_at=at,
                    ),
                )
            )
            results.append(op)
        if counted:
            _write_counted(counted, at)
    return results


def _write_counted(counted: list[_Counted], at: datetime) -> None:
    """The writes of :func:`report_quantities`: one statement per table, rows in order. The
    orders' clock before the confirmations' (the services' lock order)."""
    now = timezone.now()
    events: list[NewEvent] = []
    times = clock.next_times(clock.WORK_ORDERS, len(counted))
    seqs = clock.next_values(clock.CONFIRMATIONS, len(counted))
    rollup_rows: dict = {}
    for item, when, seq in zip(counted, times, seqs, strict=True):
        wo, op, confirmation = item.work_order, item.operation, item.confirmation
        op.updated_at, wo.updated_at, confirmation.seq = now, when, seq
        item.data["updated_at"] = iso_utc(when)
        wo.rendered = render_json(item.data)  # the order's last report in the pass wins
        events.append(NewEvent(EventType.WORK_ORDER_UPDATED, wo.number, item.data, when))
        events.append(
            NewEvent(
                EventType.CONFIRMATION_CREATED,
                wo.number,
                confirmation_representation(confirmation, wo.number),
                at,
            )
        )
        if confirmation.quantity_good or confirmation.quantity_scrap:
            rollups.merge(
                rollup_rows,
                rollups.count_rows(
                    op, good=confirmation.quantity_good, scrap=confirmation.quantity_scrap, at=at
                ),
            )
    insert_rows(AuditRecord, [item.audit for item in counted])
    update_rows(
        Operation,
        list({id(i.operation): i.operation for i in counted}.values()),
        [*COUNTED_FIELDS, "version", "updated_at"],
    )
    update_rows(
        WorkOrder,
        list({id(i.work_order): i.work_order for i in counted}.values()),
        ["quantity_good", "quantity_scrap", "version", "updated_at", "rendered"],
    )
    insert_rows(ProductionConfirmation, [item.confirmation for item in counted])
    record_events(events)
    rollups.add(rollup_rows)


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
