"""The operation state machine and the production rules around it, through the services."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from erp_sync.models import EventType, OutboxEvent
from mes import services
from mes.choices import EntityType, OperationStatus, WorkOrderStatus
from mes.errors import Conflict, InvalidTransition, StaleObject, ValidationFailed
from mes.models import AuditRecord, Operation, WorkOrder
from mes.statemachine import OPERATION_TRANSITIONS
from tests.factories import (
    MachineFactory,
    ProductFactory,
    RoutingFactory,
    RoutingStepFactory,
    WorkCenterFactory,
    make_routing,
    make_work_order,
)

from .marks import last_ids

WO = WorkOrderStatus
Op = OperationStatus

PAUSE_REASON = "Tool change"
HOLD_REASON = "Quality check"

STATUSES = [Op.PENDING, Op.READY, Op.RUNNING, Op.PAUSED, Op.DONE, Op.CANCELLED]
ACTIONS = ["start", "pause", "resume", "complete", "report_quantity"]

# Legal pairs and the operation status they lead to; all others raise InvalidTransition.
LEGAL = {
    (Op.READY, "start"): Op.RUNNING,
    (Op.RUNNING, "pause"): Op.PAUSED,
    (Op.PAUSED, "resume"): Op.RUNNING,
    (Op.RUNNING, "complete"): Op.DONE,
    (Op.PAUSED, "complete"): Op.DONE,
    (Op.RUNNING, "report_quantity"): Op.RUNNING,
    (Op.PAUSED, "report_quantity"): Op.PAUSED,
}


def operation_in(status: str, *, supervisor, operator) -> Operation:
    """An operation of a fresh three-step work order, brought to ``status`` by the services."""
    wo = make_work_order(actor=supervisor, steps=3)
    first = wo.operations.get(sequence=10)
    if status == Op.PENDING:
        op = wo.operations.get(sequence=20)
    elif status == Op.READY:
        op = first
    elif status == Op.CANCELLED:
        services.cancel_work_order(wo, actor=supervisor, reason="Not needed")
        op = first
    else:
        op = services.start_operation(first, operator=operator)
        if status == Op.PAUSED:
            services.pause_operation(op, actor=operator, reason=PAUSE_REASON)
        elif status == Op.DONE:
            services.report_quantity(op, actor=operator, good=10)
            services.complete_operation(op, actor=operator)
    op.refresh_from_db()
    assert op.status == status, f"helper failed to reach {status}"
    return op


def perform(action: str, op: Operation, *, actor, **kwargs):
    if action == "start":
        return services.start_operation(op, operator=actor, **kwargs)
    if action == "pause":
        return services.pause_operation(op, actor=actor, reason=PAUSE_REASON, **kwargs)
    if action == "resume":
        return services.resume_operation(op, actor=actor, **kwargs)
    if action == "complete":
        return services.complete_operation(op, actor=actor, **kwargs)
    return services.report_quantity(op, actor=actor, good=5, scrap=1, **kwargs)


def snapshot(wo: WorkOrder) -> dict:
    wo.refresh_from_db()
    return {
        "wo": (wo.status, wo.version, wo.quantity_good, wo.quantity_scrap),
        "ops": list(
            wo.operations.order_by("sequence").values_list(
                "status", "version", "quantity_good", "quantity_scrap", "machine_id"
            )
        ),
        "audit": AuditRecord.objects.count(),
        "outbox": OutboxEvent.objects.count(),
    }


def statuses(wo: WorkOrder) -> list[str]:
    return list(wo.operations.order_by("sequence").values_list("status", flat=True))


def test_legal_pairs_are_transitions_of_the_table():
    for (frm, _action), to in LEGAL.items():
        assert frm == to or to in OPERATION_TRANSITIONS[frm], (frm, to)


def _pair(status, action):
    return pytest.param(status, action, id=f"{status}-{action}")


@pytest.mark.parametrize(("status", "action"), [_pair(s, a) for s in STATUSES for a in ACTIONS])
def test_operation_transition(status, action, supervisor, operator):
    op = operation_in(status, supervisor=supervisor, operator=operator)
    wo = op.work_order
    before = snapshot(wo)
    audit_mark, outbox_mark = last_ids()

    if (status, action) not in LEGAL:
        with pytest.raises(InvalidTransition):
            perform(action, op, actor=operator)
        assert snapshot(wo) == before
        return

    expected = LEGAL[(status, action)]
    perform(action, op, actor=operator)
    op.refresh_from_db()
    wo.refresh_from_db()
    assert op.status == expected
    assert op.version == before["ops"][0][1] + 1
    assert wo.version == before["wo"][1] + 1

    record = AuditRecord.objects.get(
        id__gt=audit_mark, entity_type=EntityType.OPERATION, entity_id=op.pk
    )
    assert record.actor == operator
    assert record.actor_name == "Ana Lopez"
    assert record.action == action
    assert record.work_order_id == wo.pk
    if action == "report_quantity":
        assert (record.from_state, record.to_state) == ("", "")
        assert record.changes == {"quantity_good": ["0", "5"], "quantity_scrap": ["0", "1"]}
        assert (op.quantity_good, op.quantity_scrap) == (5, 1)
    else:
        assert (record.from_state, record.to_state) == (status, expected)
    assert record.reason == (PAUSE_REASON if action == "pause" else "")

    events = list(OutboxEvent.objects.filter(id__gt=outbox_mark).order_by("id"))
    confirms = action in ("report_quantity", "complete")
    assert [e.event_type for e in events] == [EventType.WORK_ORDER_UPDATED] + (
        [EventType.CONFIRMATION_CREATED] if confirms else []
    )
    event = events[0]
    assert event.payload["status"] == wo.status
    assert event.payload["operations"][0]["status"] == expected


# --- Sequencing and completion ----------------------------------------------------------------


def test_next_operation_becomes_ready_when_the_previous_is_done(work_order, operator):
    first = services.start_operation(work_order.operations.get(sequence=10), operator=operator)
    assert statuses(work_order) == [Op.RUNNING, Op.PENDING, Op.PENDING]
    mark, _ = last_ids()

    services.complete_operation(first, actor=operator)

    assert statuses(work_order) == [Op.DONE, Op.READY, Op.PENDING]
    second = work_order.operations.get(sequence=20)
    ready = AuditRecord.objects.get(id__gt=mark, entity_id=second.pk, entity_type="operation")
    assert (ready.action, ready.from_state, ready.to_state) == ("ready", Op.PENDING, Op.READY)
    work_order.refresh_from_db()
    assert work_order.status == WO.IN_PROGRESS


def test_pending_operation_cannot_start_before_its_predecessor_is_done(work_order, operator):
    second = work_order.operations.get(sequence=20)
    with pytest.raises(InvalidTransition) as exc:
        services.start_operation(second, operator=operator)
    assert "op 10 is not done" in exc.value.message


def test_work_order_completes_with_its_last_operation(work_order, operator):
    ops = list(work_order.operations.order_by("sequence"))
    for op in ops[:-1]:
        op = services.start_operation(op, operator=operator)
        services.complete_operation(op, actor=operator)
        work_order.refresh_from_db()
        assert work_order.status == WO.IN_PROGRESS
    last = services.start_operation(ops[-1], operator=operator)
    mark, _ = last_ids()

    services.complete_operation(last, actor=operator)

    work_order.refresh_from_db()
    assert work_order.status == WO.COMPLETED
    assert work_order.actual_end is not None
    record = AuditRecord.objects.get(id__gt=mark, entity_type=EntityType.WORK_ORDER)
    assert (record.action, record.from_state, record.to_state) == (
        "complete",
        WO.IN_PROGRESS,
        WO.COMPLETED,
    )


# --- Quantities -------------------------------------------------------------------------------


def test_negative_correction_below_zero_is_refused(work_order, operator):
    op = services.start_operation(work_order.operations.get(sequence=10), operator=operator)
    services.report_quantity(op, actor=operator, good=5, scrap=2)
    before = snapshot(work_order)

    with pytest.raises(ValidationFailed) as exc:
        services.report_quantity(op, actor=operator, good=-6, reason="Miscounted")
    assert "good" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        services.report_quantity(op, actor=operator, scrap=-3, reason="Miscounted")
    assert "scrap" in exc.value.errors

    assert snapshot(work_order) == before


def test_negative_correction_needs_a_reason(work_order, operator):
    op = services.start_operation(work_order.operations.get(sequence=10), operator=operator)
    services.report_quantity(op, actor=operator, good=5)
    before = snapshot(work_order)

    with pytest.raises(ValidationFailed) as exc:
        services.report_quantity(op, actor=operator, good=-1, reason="  ")
    assert "reason" in exc.value.errors
    assert snapshot(work_order) == before

    op = services.report_quantity(op, actor=operator, good=-5, reason="Miscounted")
    assert op.quantity_good == 0
    record = AuditRecord.objects.filter(entity_id=op.pk, entity_type="operation").last()
    assert (record.action, record.reason) == ("report_quantity", "Miscounted")


def test_quantity_too_large_for_the_column_is_a_validation_error(work_order, operator):
    op = services.start_operation(work_order.operations.get(sequence=10), operator=operator)
    before = snapshot(work_order)

    with pytest.raises(ValidationFailed):
        services.report_quantity(op, actor=operator, good=10**12)

    assert snapshot(work_order) == before


@pytest.mark.parametrize(
    "good", [Decimal("1e999999999"), Decimal("-1e999999999"), "1e999999999", "1_000", "\u0661"]
)
def test_a_huge_exponent_or_text_that_is_not_ascii_digits_is_a_validation_error(
    work_order, operator, good
):
    """abs(Decimal("1e999999999")) overflowed the decimal context: a server error."""
    op = services.start_operation(work_order.operations.get(sequence=10), operator=operator)
    before = snapshot(work_order)

    with pytest.raises(ValidationFailed) as exc:
        services.report_quantity(op, actor=operator, good=good, reason="Miscounted")

    assert set(exc.value.errors) == {"good"}
    assert snapshot(work_order) == before


def test_work_order_good_is_the_last_operations_and_scrap_the_sum(work_order, operator):
    reports = {10: (10, 1), 20: (8, 2), 30: (7, "1.5")}
    for op in work_order.operations.order_by("sequence"):
        op = services.start_operation(op, operator=operator)
        good, scrap = reports[op.sequence]
        services.report_quantity(op, actor=operator, good=good, scrap=scrap)
        work_order.refresh_from_db()
        if op.sequence == 10:
            # Only the last operation's good output counts as the order's good quantity.
            assert work_order.quantity_good == 0
            assert work_order.quantity_scrap == 1
        services.complete_operation(op, actor=operator)

    work_order.refresh_from_db()
    assert work_order.quantity_good == 7
    assert work_order.quantity_scrap == Decimal("4.5")


# --- Machines ---------------------------------------------------------------------------------


def test_work_center_with_two_machines_requires_a_machine(supervisor, operator):
    wo = make_work_order(actor=supervisor, routing=make_routing(2, machines_per_center=2))
    op = wo.operations.get(sequence=10)
    before = snapshot(wo)

    with pytest.raises(ValidationFailed) as exc:
        services.start_operation(op, operator=operator)
    assert "machine" in exc.value.errors
    assert snapshot(wo) == before

    chosen = op.work_center.machines.order_by("code").last()
    op = services.start_operation(op, operator=operator, machine=chosen)
    op.refresh_from_db()
    assert (op.status, op.machine_id) == (Op.RUNNING, chosen.pk)


def test_single_machine_is_chosen_automatically(work_order, operator):
    op = services.start_operation(work_order.operations.get(sequence=10), operator=operator)
    op.refresh_from_db()
    assert op.machine == op.work_center.machines.get()


def test_machine_of_another_work_center_is_refused(work_order, operator):
    op = work_order.operations.get(sequence=10)
    elsewhere = MachineFactory(work_center=WorkCenterFactory())
    before = snapshot(work_order)

    with pytest.raises(ValidationFailed) as exc:
        services.start_operation(op, operator=operator, machine=elsewhere)

    assert "machine" in exc.value.errors
    assert snapshot(work_order) == before


def test_machine_busy_with_another_running_operation_is_refused(
    supervisor, operator, other_operator
):
    routing = make_routing(2)
    first = make_work_order(actor=supervisor, routing=routing)
    second = make_work_order(actor=supervisor, routing=routing)
    busy = services.start_operation(first.operations.get(sequence=10), operator=operator)
    waiting = second.operations.get(sequence=10)
    before = snapshot(second)

    with pytest.raises(Conflict) as exc:
        services.start_operation(waiting, operator=other_operator)

    assert busy.label in exc.value.message
    assert snapshot(second) == before

    # Once the machine is free again (paused), the other operation may start on it.
    services.pause_operation(busy, actor=operator, reason=PAUSE_REASON)
    started = services.start_operation(waiting, operator=other_operator)
    assert started.status == Op.RUNNING
    # And now the paused one cannot resume on the busy machine.
    busy_before = snapshot(first)
    with pytest.raises(Conflict):
        services.resume_operation(busy, actor=operator)
    assert snapshot(first) == busy_before


# --- Held work orders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        "start",
        "resume",
        "complete",
        "pause",
        "report_quantity",
    ],
)
def test_operating_on_a_held_work_order_is_refused(action, supervisor, operator):
    wo = make_work_order(actor=supervisor, steps=3)
    if action == "start":
        op = wo.operations.get(sequence=10)  # ready, the order was released
    else:
        op = services.start_operation(wo.operations.get(sequence=10), operator=operator)
    services.hold_work_order(wo, actor=supervisor, reason=HOLD_REASON)
    op.refresh_from_db()
    before = snapshot(wo)

    with pytest.raises(InvalidTransition):
        perform(action, op, actor=operator)

    assert snapshot(wo) == before


# --- Stale versions ---------------------------------------------------------------------------


def test_stale_operation_version_names_who_did_what(work_order, operator, other_operator):
    op = services.start_operation(work_order.operations.get(sequence=10), operator=operator)
    seen = op.version
    services.complete_operation(op, actor=operator, expected_version=seen)
    before = snapshot(work_order)

    with pytest.raises(StaleObject) as exc:
        services.report_quantity(op, actor=other_operator, good=1, expected_version=seen)

    assert f"{op.label} was completed by Ana Lopez" in exc.value.message
    assert "Nothing was changed" in exc.value.message
    assert snapshot(work_order) == before


def test_stale_work_order_version_names_who_did_what(work_order, supervisor, planner):
    seen = work_order.version
    services.hold_work_order(work_order, actor=supervisor, reason=HOLD_REASON)
    before = snapshot(work_order)

    with pytest.raises(StaleObject) as exc:
        services.cancel_work_order(
            work_order, actor=planner, reason="Duplicate", expected_version=seen
        )

    assert f"{work_order.number} was put on hold by Sam Weber" in exc.value.message
    assert snapshot(work_order) == before


def test_stale_work_order_message_names_the_latest_change(work_order, operator, planner):
    op = services.start_operation(work_order.operations.get(sequence=10), operator=operator)
    work_order.refresh_from_db()
    seen = work_order.version
    services.report_quantity(op, actor=operator, good=3)

    with pytest.raises(StaleObject) as exc:
        services.update_work_order(work_order, actor=planner, quantity=120, expected_version=seen)

    assert "given a quantity report by Ana Lopez" in exc.value.message


def test_current_version_is_accepted(work_order, operator):
    op = work_order.operations.get(sequence=10)
    op = services.start_operation(op, operator=operator, expected_version=op.version)
    assert op.status == Op.RUNNING


# --- update_work_order ------------------------------------------------------------------------


def test_update_with_the_same_values_changes_nothing(work_order, planner):
    wo, changed = services.update_work_order(
        work_order, actor=planner, quantity=150, priority="rush", notes="Urgent"
    )
    assert changed is True
    assert (wo.quantity, wo.priority, wo.notes) == (150, "rush", "Urgent")
    before = snapshot(work_order)

    wo, changed = services.update_work_order(
        work_order, actor=planner, quantity="150.000", priority="rush", notes="Urgent"
    )

    assert changed is False
    assert snapshot(work_order) == before


def test_quantity_cannot_go_below_the_good_quantity(work_order, operator, planner):
    for op in work_order.operations.order_by("sequence"):
        op = services.start_operation(op, operator=operator)
        services.report_quantity(op, actor=operator, good=50)
        if op.sequence != 30:
            services.complete_operation(op, actor=operator)
    before = snapshot(work_order)

    with pytest.raises(Conflict) as exc:
        services.update_work_order(work_order, actor=planner, quantity=49)

    assert "quantity" in exc.value.errors
    assert snapshot(work_order) == before
    wo, changed = services.update_work_order(work_order, actor=planner, quantity=50)
    assert changed is True
    assert wo.quantity == 50


@pytest.mark.parametrize("field", ["product", "routing"])
def test_product_and_routing_cannot_change_after_production_started(
    field, work_order, operator, planner
):
    services.start_operation(work_order.operations.get(sequence=10), operator=operator)
    if field == "product":
        change = {"product": make_routing(2).product}
    else:
        other = RoutingFactory(product=work_order.product, version=2, active=False)
        RoutingStepFactory(routing=other, sequence=10)
        change = {"routing": other}
    before = snapshot(work_order)

    with pytest.raises(Conflict) as exc:
        services.update_work_order(work_order, actor=planner, **change)

    assert field in exc.value.errors
    assert snapshot(work_order) == before


def test_product_change_before_start_replaces_the_operations(work_order, planner):
    new_routing = make_routing(2, product=ProductFactory())
    wo, changed = services.update_work_order(work_order, actor=planner, product=new_routing.product)

    assert changed is True
    assert (wo.product_id, wo.routing_id) == (new_routing.product_id, new_routing.pk)
    steps = list(new_routing.steps.order_by("sequence").values_list("sequence", "name"))
    assert list(wo.operations.order_by("sequence").values_list("sequence", "name")) == steps
    assert statuses(wo) == [Op.READY, Op.PENDING]


# --- The audit trail is append-only -----------------------------------------------------------


def test_audit_record_cannot_be_saved_again(work_order):
    record = AuditRecord.objects.filter(work_order=work_order).first()
    record.reason = "rewritten"
    with pytest.raises(TypeError):
        record.save()
    assert AuditRecord.objects.get(pk=record.pk).reason == ""


def test_audit_record_cannot_be_deleted(work_order):
    record = AuditRecord.objects.filter(work_order=work_order).first()
    with pytest.raises(TypeError):
        record.delete()
    assert AuditRecord.objects.filter(pk=record.pk).exists()


def test_audit_queryset_cannot_update_or_delete(work_order):
    count = AuditRecord.objects.count()
    with pytest.raises(TypeError):
        AuditRecord.objects.filter(work_order=work_order).update(reason="rewritten")
    with pytest.raises(TypeError):
        AuditRecord.objects.filter(work_order=work_order).delete()
    with pytest.raises(TypeError):
        work_order.audit_records.all().delete()
    assert AuditRecord.objects.count() == count
    assert not AuditRecord.objects.filter(reason="rewritten").exists()


def test_raw_sql_update_of_an_audit_record_is_refused_by_the_database(work_order):
    record = AuditRecord.objects.filter(work_order=work_order).first()
    table = connection.ops.quote_name(AuditRecord._meta.db_table)

    with (
        pytest.raises(DatabaseError) as exc,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"UPDATE {table} SET reason = %s WHERE id = %s", ["x", record.pk])

    assert "append-only" in str(exc.value)
    assert AuditRecord.objects.get(pk=record.pk).reason == ""
