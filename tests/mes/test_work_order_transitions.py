"""The work-order state machine, driven through the services.

Every (from status, action) pair is exercised: the explicit transitions (release, hold,
cancel) and the automatic ones (starting the first operation puts the order in progress,
completing the last one completes it). Each from-state is reached through the services.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from erp_sync.models import EventType, OutboxEvent
from mes import services
from mes.choices import EntityType, OperationStatus, WorkOrderStatus
from mes.errors import InvalidTransition, ValidationFailed
from mes.models import AuditRecord, Operation, RoutingStep, WorkOrder
from mes.statemachine import WORK_ORDER_TRANSITIONS
from tests.factories import RoutingFactory, make_routing, make_work_order

from .marks import last_ids

WO = WorkOrderStatus
Op = OperationStatus

HOLD_REASON = "Material shortage"
CANCEL_REASON = "Customer cancelled the order"
RELEASE_REASON = "Material arrived"

# From-states. "on_hold" appears twice because releasing a hold depends on what it interrupted.
FROM_STATES = [
    "planned",
    "released",
    "in_progress",
    "on_hold_from_released",
    "on_hold_from_in_progress",
    "completed",
    "cancelled",
]
ACTIONS = ["release", "hold", "cancel", "start", "complete"]

# Legal pairs and the status they lead to; every other pair must raise InvalidTransition.
LEGAL = {
    ("planned", "release"): WO.RELEASED,
    ("planned", "cancel"): WO.CANCELLED,
    ("released", "hold"): WO.ON_HOLD,
    ("released", "cancel"): WO.CANCELLED,
    ("released", "start"): WO.IN_PROGRESS,
    ("in_progress", "hold"): WO.ON_HOLD,
    ("in_progress", "complete"): WO.COMPLETED,
    ("on_hold_from_released", "release"): WO.RELEASED,
    ("on_hold_from_released", "cancel"): WO.CANCELLED,
    ("on_hold_from_in_progress", "release"): WO.IN_PROGRESS,
    ("on_hold_from_in_progress", "cancel"): WO.CANCELLED,
}
# A planned order has no operations yet: there is nothing to start or complete.
NO_OPERATION = {("planned", "start"), ("planned", "complete")}


def base_status(state: str) -> str:
    return WO.ON_HOLD if state.startswith("on_hold") else state


def bring_to(state: str, *, supervisor, operator, steps: int = 1) -> WorkOrder:
    """A fresh work order in ``state``, reached through the services only."""
    if state == "planned":
        wo = make_work_order(actor=supervisor, steps=steps, release=False)
    else:
        wo = make_work_order(actor=supervisor, steps=steps)
    if state in ("in_progress", "on_hold_from_in_progress", "completed"):
        first = wo.operations.get(sequence=10)
        services.start_operation(first, operator=operator)
    if state.startswith("on_hold"):
        services.hold_work_order(wo, actor=supervisor, reason=HOLD_REASON)
    if state == "completed":
        for op in wo.operations.order_by("sequence"):
            if op.status == Op.READY:
                op = services.start_operation(op, operator=operator)
            services.report_quantity(op, actor=operator, good=99, scrap=1)
            services.complete_operation(op, actor=operator)
    if state == "cancelled":
        services.cancel_work_order(wo, actor=supervisor, reason=CANCEL_REASON)
    wo.refresh_from_db()
    assert wo.status == base_status(state), f"helper failed to reach {state}"
    return wo


def target_operation(wo: WorkOrder, action: str) -> Operation | None:
    """start acts on the first unfinished operation (else the first), complete on the last."""
    ops = list(wo.operations.order_by("sequence"))
    if not ops:
        return None
    if action == "start":
        unfinished = [op for op in ops if op.status not in (Op.DONE, Op.CANCELLED)]
        return (unfinished or ops)[0]
    return ops[-1]


def perform(action: str, wo: WorkOrder, *, supervisor, operator):
    if action == "release":
        return services.release_work_order(wo, actor=supervisor, reason=RELEASE_REASON)
    if action == "hold":
        return services.hold_work_order(wo, actor=supervisor, reason=HOLD_REASON)
    if action == "cancel":
        return services.cancel_work_order(wo, actor=supervisor, reason=CANCEL_REASON)
    op = target_operation(wo, action)
    if action == "start":
        return services.start_operation(op, operator=operator)
    return services.complete_operation(op, actor=operator)


def snapshot(wo: WorkOrder) -> dict:
    wo.refresh_from_db()
    return {
        "status": wo.status,
        "version": wo.version,
        "held_from_status": wo.held_from_status,
        "ops": list(wo.operations.order_by("sequence").values_list("status", "version")),
        "audit": AuditRecord.objects.count(),
        "outbox": OutboxEvent.objects.count(),
    }


def test_pairs_cover_every_transition_of_the_table():
    covered = {(base_status(state), to) for (state, _action), to in LEGAL.items()}
    table = {(frm, to) for frm, tos in WORK_ORDER_TRANSITIONS.items() for to in tos}
    assert covered == table


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("state", FROM_STATES)
def test_work_order_transition(state, action, supervisor, operator):
    wo = bring_to(state, supervisor=supervisor, operator=operator)
    before = snapshot(wo)
    audit_mark, outbox_mark = last_ids()

    if (state, action) in NO_OPERATION:
        assert target_operation(wo, action) is None
        return

    if (state, action) not in LEGAL:
        with pytest.raises(InvalidTransition):
            perform(action, wo, supervisor=supervisor, operator=operator)
        assert snapshot(wo) == before
        return

    expected = LEGAL[(state, action)]
    perform(action, wo, supervisor=supervisor, operator=operator)
    wo.refresh_from_db()
    assert wo.status == expected
    assert wo.version > before["version"]

    records = AuditRecord.objects.filter(
        id__gt=audit_mark, entity_type=EntityType.WORK_ORDER, entity_id=wo.pk
    )
    assert records.count() == 1
    record = records.get()
    by_supervisor = action in ("release", "hold", "cancel")
    actor = supervisor if by_supervisor else operator
    assert record.actor == actor
    assert record.actor_name == ("Sam Weber" if by_supervisor else "Ana Lopez")
    assert record.action == action
    assert record.from_state == base_status(state)
    assert record.to_state == expected
    assert record.work_order_id == wo.pk
    assert record.reason == {
        "release": RELEASE_REASON,
        "hold": HOLD_REASON,
        "cancel": CANCEL_REASON,
    }.get(action, "")

    events = list(OutboxEvent.objects.filter(id__gt=outbox_mark).order_by("id"))
    confirms = action == "complete"  # completing the last operation confirms it (final)
    assert [e.event_type for e in events] == [EventType.WORK_ORDER_UPDATED] + (
        [EventType.CONFIRMATION_CREATED] if confirms else []
    )
    event = events[0]
    assert event.aggregate_key == wo.number
    assert event.payload["status"] == expected


# --- Side effects of the transitions ----------------------------------------------------------


def test_hold_pauses_the_running_operation(supervisor, operator):
    wo = bring_to("in_progress", supervisor=supervisor, operator=operator, steps=3)
    running = wo.operations.get(sequence=10)
    mark, _ = last_ids()

    services.hold_work_order(wo, actor=supervisor, reason=HOLD_REASON)

    running.refresh_from_db()
    assert running.status == Op.PAUSED
    record = AuditRecord.objects.get(
        id__gt=mark, entity_type=EntityType.OPERATION, entity_id=running.pk
    )
    assert (record.action, record.from_state, record.to_state) == ("pause", Op.RUNNING, Op.PAUSED)
    assert record.actor == supervisor
    assert HOLD_REASON in record.reason
    # The operations that were not running are untouched.
    assert list(wo.operations.exclude(pk=running.pk).values_list("status", flat=True)) == [
        Op.PENDING,
        Op.PENDING,
    ]


def test_hold_of_a_released_order_leaves_the_ready_operation_ready(supervisor, operator):
    wo = bring_to("on_hold_from_released", supervisor=supervisor, operator=operator, steps=3)
    assert list(wo.operations.order_by("sequence").values_list("status", flat=True)) == [
        Op.READY,
        Op.PENDING,
        Op.PENDING,
    ]


@pytest.mark.parametrize(
    ("interrupted", "state"),
    [(WO.RELEASED, "on_hold_from_released"), (WO.IN_PROGRESS, "on_hold_from_in_progress")],
)
def test_release_from_hold_returns_to_the_interrupted_status(
    interrupted, state, supervisor, operator
):
    wo = bring_to(state, supervisor=supervisor, operator=operator, steps=3)
    assert wo.held_from_status == interrupted

    services.release_work_order(wo, actor=supervisor)

    wo.refresh_from_db()
    assert wo.status == interrupted
    assert wo.held_from_status == ""
    # Releasing a hold copies nothing again: still the same three operations.
    assert wo.operations.count() == 3


def test_operation_paused_by_a_hold_can_be_resumed_after_release(supervisor, operator):
    wo = bring_to("on_hold_from_in_progress", supervisor=supervisor, operator=operator, steps=3)
    services.release_work_order(wo, actor=supervisor)
    op = services.resume_operation(wo.operations.get(sequence=10), actor=operator)
    assert op.status == Op.RUNNING


def test_cancel_from_released_cancels_all_open_operations(supervisor, operator):
    wo = bring_to("released", supervisor=supervisor, operator=operator, steps=3)
    mark, _ = last_ids()

    services.cancel_work_order(wo, actor=supervisor, reason=CANCEL_REASON)

    statuses = list(wo.operations.order_by("sequence").values_list("status", flat=True))
    assert statuses == [Op.CANCELLED] * 3
    op_records = AuditRecord.objects.filter(id__gt=mark, entity_type=EntityType.OPERATION)
    assert sorted(op_records.values_list("from_state", "to_state", "action", "reason")) == sorted(
        [
            (Op.READY, Op.CANCELLED, "cancel", CANCEL_REASON),
            (Op.PENDING, Op.CANCELLED, "cancel", CANCEL_REASON),
            (Op.PENDING, Op.CANCELLED, "cancel", CANCEL_REASON),
        ]
    )


def test_cancel_from_hold_cancels_open_operations_and_keeps_done_ones(supervisor, operator):
    wo = make_work_order(actor=supervisor, steps=3)
    first = services.start_operation(wo.operations.get(sequence=10), operator=operator)
    services.complete_operation(first, actor=operator)
    services.start_operation(wo.operations.get(sequence=20), operator=operator)
    services.hold_work_order(wo, actor=supervisor, reason=HOLD_REASON)

    services.cancel_work_order(wo, actor=supervisor, reason=CANCEL_REASON)

    wo.refresh_from_db()
    assert wo.status == WO.CANCELLED
    statuses = list(wo.operations.order_by("sequence").values_list("status", flat=True))
    assert statuses == [Op.DONE, Op.CANCELLED, Op.CANCELLED]


@pytest.mark.parametrize("reason", ["", "   "])
@pytest.mark.parametrize("action", ["hold", "cancel"])
def test_hold_and_cancel_require_a_reason(action, reason, supervisor, operator):
    wo = bring_to("released", supervisor=supervisor, operator=operator, steps=3)
    before = snapshot(wo)
    service = services.hold_work_order if action == "hold" else services.cancel_work_order

    with pytest.raises(ValidationFailed) as exc:
        service(wo, actor=supervisor, reason=reason)

    assert "reason" in exc.value.errors
    assert snapshot(wo) == before


# --- Release copies the routing ---------------------------------------------------------------


def test_release_copies_routing_steps_into_operations(supervisor):
    routing = make_routing(3)
    steps = list(routing.steps.order_by("sequence"))
    # Make the steps distinguishable, so that a mix-up would show.
    for i, step in enumerate(steps):
        step.name = f"Step {i} of {routing.code}"
        step.setup_seconds = 100 * (i + 1)
        step.cycle_seconds = Decimal("1.25") * (i + 1)
        step.instructions = f"Instruction {i}"
        step.save()
    wo = make_work_order(actor=supervisor, routing=routing, release=False)
    assert wo.operations.count() == 0

    services.release_work_order(wo, actor=supervisor)

    ops = list(wo.operations.order_by("sequence"))
    fields = ("sequence", "name", "work_center_id", "setup_seconds", "cycle_seconds")
    copied = [tuple(getattr(op, f) for f in (*fields, "instructions")) for op in ops]
    expected = [tuple(getattr(s, f) for f in (*fields, "instructions")) for s in steps]
    assert copied == expected
    assert [op.status for op in ops] == [Op.READY, Op.PENDING, Op.PENDING]

    # Editing the routing afterwards changes nothing in flight.
    step = steps[0]
    step.name = "Renamed"
    step.setup_seconds = 9999
    step.cycle_seconds = Decimal("99.5")
    step.instructions = "New instructions"
    step.work_center = steps[1].work_center
    step.save()
    RoutingStep.objects.filter(pk=steps[2].pk).delete()

    after = [
        tuple(getattr(op, f) for f in (*fields, "instructions"))
        for op in wo.operations.order_by("sequence")
    ]
    assert after == expected


def test_release_of_a_routing_without_steps_is_refused(supervisor):
    routing = RoutingFactory()
    wo = make_work_order(actor=supervisor, routing=routing, release=False)
    before = snapshot(wo)

    with pytest.raises(ValidationFailed) as exc:
        services.release_work_order(wo, actor=supervisor)

    assert "routing" in exc.value.errors
    assert snapshot(wo) == before
    assert wo.operations.count() == 0
