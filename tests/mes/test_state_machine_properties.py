"""Random sequences of service calls on one three-operation work order keep the invariants
of the production state machines, and every call either changes state with one audit record
per status change or changes nothing at all."""

from __future__ import annotations

from decimal import Decimal

import hypothesis
from hypothesis import HealthCheck, Phase, event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from erp_sync.models import EventType, OutboxEvent
from mes import services
from mes.choices import OperationStatus, WorkOrderStatus
from mes.errors import DomainError
from mes.models import AuditRecord, Operation, ProductionConfirmation, WorkOrder
from tests.factories import make_work_order
from tests.mes.marks import last_id

WO = WorkOrderStatus
Op = OperationStatus
STEPS = 3
# A routing step not yet copied into an operation counts as a pending operation: release
# creates operations in pending (no audit record) and then makes the first one ready.
NOT_YET_COPIED = Op.PENDING

# None picks the current operation, so that calls often hit the one where work happens.
op_choice = st.one_of(st.none(), st.integers(min_value=0, max_value=STEPS - 1))
reasons = st.sampled_from(["Operator request", ""])
deltas = st.one_of(
    st.integers(min_value=0, max_value=25),
    st.integers(min_value=-8, max_value=-1),
    st.decimals(min_value=-3, max_value=10, places=3, allow_nan=False, allow_infinity=False),
)


class WorkOrderStateMachine(RuleBasedStateMachine):
    def __init__(self, *, supervisor, operator):
        super().__init__()
        self.supervisor = supervisor
        self.operator = operator
        self.wo: WorkOrder = make_work_order(actor=supervisor, steps=STEPS, release=False)
        self.ever_completed = False
        self.ever_cancelled = False

    # --- observation --------------------------------------------------------------------------

    def operations(self) -> list[Operation]:
        return list(Operation.objects.filter(work_order=self.wo).order_by("sequence"))

    def snapshot(self) -> dict:
        wo = WorkOrder.objects.get(pk=self.wo.pk)
        ops = self.operations()
        return {
            "status": wo.status,
            "op_status": [op.status for op in ops] or [NOT_YET_COPIED] * STEPS,
            # Everything else that a refused call must leave alone.
            "state": (
                wo.version,
                wo.quantity,
                wo.quantity_good,
                wo.quantity_scrap,
                wo.held_from_status,
                [(op.pk, op.version, op.quantity_good, op.quantity_scrap) for op in ops],
            ),
        }

    def apply(self, name: str, call, *, report: bool = False) -> None:
        """Run ``call``; check that it either changed state with one audit record per status
        change (plus one for a quantity report) and one outbox event, or changed nothing."""
        before = self.snapshot()
        audit_mark, outbox_mark = last_id(AuditRecord), last_id(OutboxEvent)
        seq_mark = last_id(ProductionConfirmation)
        try:
            call()
        except DomainError as exc:
            event(f"{name} refused: {type(exc).__name__}")
            assert self.snapshot() == before
            assert not AuditRecord.objects.filter(id__gt=audit_mark).exists()
            assert not OutboxEvent.objects.filter(id__gt=outbox_mark).exists()
            assert last_id(ProductionConfirmation) == seq_mark
            return
        event(f"{name} succeeded")
        after = self.snapshot()
        status_changes = int(before["status"] != after["status"]) + sum(
            b != a for b, a in zip(before["op_status"], after["op_status"], strict=True)
        )
        new_audit = AuditRecord.objects.filter(id__gt=audit_mark).count()
        assert new_audit == status_changes + int(report)
        events = list(OutboxEvent.objects.filter(id__gt=outbox_mark).order_by("id"))
        confirmations = list(
            ProductionConfirmation.objects.filter(work_order_id=self.wo.pk, id__gt=seq_mark)
        )
        # One work_order.updated per call, then one confirmation.created per confirmation.
        assert [e.event_type for e in events] == [EventType.WORK_ORDER_UPDATED] + [
            EventType.CONFIRMATION_CREATED
        ] * len(confirmations)
        assert events[0].payload["status"] == after["status"]
        assert after["state"][0] > before["state"][0]  # the version moved

    def op(self, index: int | None) -> Operation:
        """The operation at ``index``, or with None the current one (the first unfinished)."""
        ops = self.operations()
        if index is None:
            unfinished = [op for op in ops if op.status not in (Op.DONE, Op.CANCELLED)]
            return (unfinished or ops)[0]
        return ops[index]

    def has_operations(self) -> bool:
        return Operation.objects.filter(work_order=self.wo).exists()

    @initialize(progress=st.integers(min_value=0, max_value=2 * STEPS + 1))
    def begin(self, progress):
        """Go ``progress`` calls along the happy path (release, then start and complete each
        operation in turn), checked like any other call, so that runs also begin deep in the
        order's life, where random calls alone seldom get within 25 steps."""
        for _ in range(progress):
            if WorkOrder.objects.get(pk=self.wo.pk).status == WO.PLANNED:
                self.release(reason="")
            else:
                self.advance(count_first=False, good=1)

    # --- work-order rules ---------------------------------------------------------------------

    @rule(reason=reasons)
    def release(self, reason):
        self.apply(
            "release",
            lambda: services.release_work_order(self.wo, actor=self.supervisor, reason=reason),
        )

    @rule(reason=reasons)
    def hold(self, reason):
        self.apply(
            "hold", lambda: services.hold_work_order(self.wo, actor=self.supervisor, reason=reason)
        )

    @rule(reason=reasons)
    def cancel(self, reason):
        self.apply(
            "cancel",
            lambda: services.cancel_work_order(self.wo, actor=self.supervisor, reason=reason),
        )

    # --- operation rules (a random operation, or with None the current one) -------------------

    @precondition(has_operations)
    @rule(index=op_choice)
    def start(self, index):
        op = self.op(index)
        self.apply("start", lambda: services.start_operation(op, operator=self.operator))

    @precondition(has_operations)
    @rule(index=op_choice, reason=reasons)
    def pause(self, index, reason):
        op = self.op(index)
        self.apply(
            "pause", lambda: services.pause_operation(op, actor=self.operator, reason=reason)
        )

    @precondition(has_operations)
    @rule(index=op_choice)
    def resume(self, index):
        op = self.op(index)
        self.apply("resume", lambda: services.resume_operation(op, actor=self.operator))

    @precondition(has_operations)
    @rule(index=op_choice, good=deltas, scrap=deltas, reason=reasons)
    def report_quantity(self, index, good, scrap, reason):
        op = self.op(index)
        self.apply(
            "report_quantity",
            lambda: services.report_quantity(
                op, actor=self.operator, good=good, scrap=scrap, reason=reason
            ),
            report=True,
        )

    @precondition(has_operations)
    @rule(index=op_choice)
    def complete(self, index):
        op = self.op(index)
        self.apply("complete", lambda: services.complete_operation(op, actor=self.operator))

    @precondition(has_operations)
    @rule(count_first=st.booleans(), good=st.integers(min_value=1, max_value=20))
    def advance(self, count_first, good):
        """The call an operator would make next on the current operation: start a ready one;
        report good parts on, or complete, a running or paused one. Keeps runs going to the
        end, where the random calls alone seldom get."""
        op = self.op(None)
        if op.status == Op.READY:
            self.apply(
                "advance/start", lambda: services.start_operation(op, operator=self.operator)
            )
        elif count_first and op.status in (Op.RUNNING, Op.PAUSED):
            self.apply(
                "advance/report_quantity",
                lambda: services.report_quantity(op, actor=self.operator, good=good),
                report=True,
            )
        else:
            self.apply(
                "advance/complete", lambda: services.complete_operation(op, actor=self.operator)
            )

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def quantities_never_negative(self):
        wo = WorkOrder.objects.get(pk=self.wo.pk)
        assert wo.quantity_good >= 0
        assert wo.quantity_scrap >= 0
        for op in self.operations():
            assert op.quantity_good >= 0, op.label
            assert op.quantity_scrap >= 0, op.label

    @invariant()
    def work_order_quantities_follow_operations(self):
        wo = WorkOrder.objects.get(pk=self.wo.pk)
        ops = self.operations()
        assert wo.quantity_scrap == sum((op.quantity_scrap for op in ops), Decimal(0))
        live = [op for op in ops if op.status != Op.CANCELLED]
        if live and wo.status != WO.CANCELLED:
            assert wo.quantity_good == live[-1].quantity_good

    @invariant()
    def no_operation_ahead_of_its_predecessors(self):
        ops = self.operations()
        for i, op in enumerate(ops):
            if op.status in (Op.RUNNING, Op.PAUSED, Op.DONE):
                assert all(prev.status == Op.DONE for prev in ops[:i]), [o.status for o in ops]

    @invariant()
    def terminal_work_orders_stay_terminal(self):
        status = WorkOrder.objects.get(pk=self.wo.pk).status
        if self.ever_completed:
            assert status == WO.COMPLETED
        if self.ever_cancelled:
            assert status == WO.CANCELLED
        self.ever_completed |= status == WO.COMPLETED
        self.ever_cancelled |= status == WO.CANCELLED

    @invariant()
    def confirmations_add_up_to_the_operation_totals(self):
        seqs = list(ProductionConfirmation.objects.order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))  # gap-free
        for op in self.operations():
            rows = ProductionConfirmation.objects.filter(operation=op)
            assert sum((c.quantity_good for c in rows), Decimal(0)) == op.quantity_good
            assert sum((c.quantity_scrap for c in rows), Decimal(0)) == op.quantity_scrap
            assert all(c.machine_seconds >= 0 for c in rows)

    @invariant()
    def active_operations_imply_an_active_order(self):
        status = WorkOrder.objects.get(pk=self.wo.pk).status
        for op in self.operations():
            if op.status == Op.RUNNING:
                assert status == WO.IN_PROGRESS, (op.label, status)
            if op.status == Op.PAUSED:
                assert status in (WO.IN_PROGRESS, WO.ON_HOLD), (op.label, status)


def test_random_service_calls_keep_the_invariants(db, supervisor, operator):
    run_state_machine_as_test(
        lambda: WorkOrderStateMachine(supervisor=supervisor, operator=operator),
        settings=hypothesis.settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            # Shrinking a database-backed machine runs into Hypothesis's five-minute shrink
            # limit; the unshrunk failing run (at most 25 steps) is printed and readable.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
