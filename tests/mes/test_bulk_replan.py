"""The re-plan's set-based writer (``apply_schedules``) writes exactly what one
``apply_schedule`` per order writes: planned times, projections, versions, renderings, audit
records and ``schedule.changed`` events, in the same order, on random plants."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import hypothesis
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import strategies as st

from erp_sync.models import OutboxDelivery, OutboxEvent
from erp_sync.services import upsert_endpoint
from mes import services
from mes.models import AuditRecord, Machine, Operation, WorkOrder
from mes.scheduling.services import ScheduleWrite, apply_schedule, apply_schedules, replan
from tests.factories import (
    MachineFactory,
    ProductFactory,
    RoutingFactory,
    RoutingStepFactory,
    WorkCenterFactory,
)
from tests.mes.marks import last_id


class _Undo(Exception):
    """Raised to roll one variant back."""


orders = st.lists(
    st.fixed_dictionaries(
        {
            "routing": st.integers(min_value=0, max_value=2),
            "quantity": st.integers(min_value=1, max_value=400),
            "due_hours": st.integers(min_value=-5, max_value=120),
            "rush": st.booleans(),
            "started": st.booleans(),
        }
    ),
    min_size=1,
    max_size=14,
)
plants = st.fixed_dictionaries(
    {
        "centers": st.integers(min_value=1, max_value=3),
        "machines": st.integers(min_value=1, max_value=2),
        "orders": orders,
        "down": st.lists(st.integers(min_value=0, max_value=5), max_size=2, unique=True),
        "hold": st.lists(st.integers(min_value=0, max_value=13), max_size=2, unique=True),
        "later_minutes": st.sampled_from([0, 30, 600]),
        "chunk": st.integers(min_value=1, max_value=5),
        "tolerance": st.sampled_from([0, 60]),
    }
)


def build(plant: dict, actor, operator) -> None:
    centers = [WorkCenterFactory() for _ in range(plant["centers"])]
    for wc in centers:
        for _ in range(plant["machines"]):
            MachineFactory(work_center=wc)
    routings = []
    for r in range(3):
        routing = RoutingFactory(product=ProductFactory())
        for s in range(1 + r % 3):
            RoutingStepFactory(
                routing=routing,
                sequence=(s + 1) * 10,
                work_center=centers[(r + s) % len(centers)],
                setup_seconds=300 * (s + 1),
                cycle_seconds=Decimal("7.5") * (r + 1),
            )
        routings.append(routing)
    now = timezone.now()
    for i, spec in enumerate(plant["orders"]):
        routing = routings[spec["routing"]]
        wo = services.create_work_order(
            number=f"EQ-{i:03d}",
            product=routing.product,
            routing=routing,
            quantity=spec["quantity"],
            due_date=now + timedelta(hours=spec["due_hours"]),
            priority="rush" if spec["rush"] else "normal",
            actor=actor,
            release=True,
        )
        if spec["started"]:
            first = wo.operations.order_by("sequence").first()
            machine = Machine.objects.filter(work_center=first.work_center_id, state="idle").first()
            if machine is not None:
                services.start_operation(first, operator=operator, machine=machine)


def written(audit_after: int, event_after: int) -> dict:
    """Every row a re-plan writes, without ids and without the clock's times (the two runs
    take them at different moments), but with their order."""

    def order_data(wo: WorkOrder) -> tuple:
        rendered = json.loads(wo.rendered)
        rendered.pop("updated_at")
        return (wo.number, wo.projected_end, wo.at_risk, wo.version, rendered)

    work_orders = list(WorkOrder.objects.order_by("pk"))
    events = list(OutboxEvent.objects.filter(id__gt=event_after).order_by("id"))
    return {
        "orders": [order_data(wo) for wo in work_orders],
        # The changes feed's order: by updated_at.
        "feed": [wo.number for wo in sorted(work_orders, key=lambda wo: wo.updated_at)],
        "operations": list(
            Operation.objects.order_by("pk").values_list(
                "work_order__number", "sequence", "planned_start", "planned_end", "version"
            )
        ),
        "audit": list(
            AuditRecord.objects.filter(id__gt=audit_after)
            .order_by("id")
            .values_list(
                "occurred_at",
                "actor_name",
                "entity_type",
                "entity_id",
                "entity_label",
                "work_order_id",
                "action",
                "from_state",
                "to_state",
                "changes",
                "reason",
            )
        ),
        "events": [(e.event_type, e.aggregate_key, e.payload) for e in events],
        # Each event at its order's new updated_at.
        "event_times": [
            e.occurred_at == WorkOrder.objects.get(number=e.aggregate_key).updated_at
            for e in events
        ],
        "deliveries": list(
            OutboxDelivery.objects.filter(event_id__gt=event_after)
            .order_by("event_id")
            .values_list("event__aggregate_key", "endpoint_code", "status")
        ),
    }


def replan_both_ways(plant: dict, *, reason: str, now=None) -> tuple[dict, dict, int]:
    now = now or timezone.now() + timedelta(minutes=plant["later_minutes"])
    audit_after, event_after = last_id(AuditRecord), last_id(OutboxEvent)
    variants = []
    for bulk in (False, True):
        try:
            with (
                transaction.atomic(),
                override_settings(
                    MES_SCHEDULE_WRITE_CHUNK=plant["chunk"],
                    MES_SCHEDULE_TOLERANCE_SECONDS=plant["tolerance"],
                ),
            ):
                summary = replan(reason=reason, now=now, bulk=bulk)
                variants.append((written(audit_after, event_after), summary.changed))
                raise _Undo
        except _Undo:
            pass
    (one_by_one, changed), (in_bulk, changed_in_bulk) = variants
    assert changed == changed_in_bulk
    return one_by_one, in_bulk, changed


@hypothesis.settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@hypothesis.given(plant=plants)
def test_bulk_writes_what_one_by_one_writes(plant, supervisor, operator):
    upsert_endpoint(
        "erp",
        url="http://127.0.0.1:9/events",
        secret="s" * 32,
        event_types=["schedule.changed", "work_order.updated"],
        active=True,
    )
    try:
        with transaction.atomic():
            build(plant, supervisor, operator)
            replan(reason="first plan")  # a plan to move away from
            machines = list(Machine.objects.order_by("pk"))
            for index in plant["down"]:
                if index < len(machines):
                    services.set_machine_state(machines[index], state="down", actor=supervisor)
            numbers = [f"EQ-{i:03d}" for i in plant["hold"] if i < len(plant["orders"])]
            for wo in WorkOrder.objects.filter(number__in=numbers):
                services.hold_work_order(wo, actor=supervisor, reason="Material missing")
            one_by_one, in_bulk, changed = replan_both_ways(plant, reason="M-1 down")
            hypothesis.event(f"changed {min(changed, 5)}+")
            assert in_bulk == one_by_one
            raise _Undo
    except _Undo:
        pass


def test_bulk_chunks_hold_the_same_rows_as_one_transaction(supervisor, operator):
    """Chunks of one order and one chunk for all write the same rows (a concrete plant where
    every order moves, as a regression guard beside the random ones)."""
    plant = {
        "centers": 2,
        "machines": 1,
        "orders": [
            {"routing": i % 3, "quantity": 50 + i, "due_hours": 2 + i, "rush": i == 3}
            | {"started": i == 0}
            for i in range(9)
        ],
    }
    build(plant, supervisor, operator)
    replan(reason="first plan")
    services.set_machine_state(Machine.objects.order_by("pk").first(), state="down", actor=operator)
    results, now = [], timezone.now()
    for chunk in (1, 250):
        plant.update(chunk=chunk, tolerance=60)
        one_by_one, in_bulk, changed = replan_both_ways(plant, reason="M down", now=now)
        assert changed >= 5
        assert in_bulk == one_by_one
        results.append(in_bulk)
    assert results[0] == results[1]


def test_nothing_moved_writes_nothing(supervisor, operator):
    build(
        {
            "centers": 1,
            "machines": 1,
            "orders": [
                {"routing": 0, "quantity": 5, "due_hours": 9, "rush": False, "started": False}
            ],
        },
        supervisor,
        operator,
    )
    replan(reason="first plan")
    audit_after, event_after = last_id(AuditRecord), last_id(OutboxEvent)
    versions = list(WorkOrder.objects.values_list("version", flat=True))
    writes = [
        ScheduleWrite(
            wo.pk,
            projected_end=wo.projected_end,
            planned={op.pk: (op.planned_start, op.planned_end) for op in wo.operations.all()},
        )
        for wo in WorkOrder.objects.all()
    ]
    assert apply_schedules(writes, reason="again") == 0
    assert list(WorkOrder.objects.values_list("version", flat=True)) == versions
    assert last_id(AuditRecord) == audit_after and last_id(OutboxEvent) == event_after


def test_operations_moving_alone_give_a_new_version_but_no_event(supervisor, operator):
    build(
        {
            "centers": 1,
            "machines": 1,
            "orders": [
                {"routing": 1, "quantity": 5, "due_hours": 9, "rush": False, "started": False}
            ],
        },
        supervisor,
        operator,
    )
    replan(reason="first plan")
    wo = WorkOrder.objects.get()
    first = wo.operations.order_by("sequence").first()
    write = ScheduleWrite(
        wo.pk,
        projected_end=wo.projected_end,
        planned={
            op.pk: (op.planned_start, op.planned_end)
            if op.pk != first.pk
            else (op.planned_start - timedelta(minutes=5), op.planned_end)
            for op in wo.operations.all()
        },
    )
    audit_after, event_after = last_id(AuditRecord), last_id(OutboxEvent)
    results = []
    for write_them in (
        lambda: apply_schedule(
            wo.pk, projected_end=write.projected_end, planned=write.planned, reason="x"
        ),
        lambda: apply_schedules([write], reason="x"),
    ):
        try:
            with transaction.atomic():
                assert write_them()
                results.append(written(audit_after, event_after))
                raise _Undo
        except _Undo:
            pass
    assert results[0] == results[1]
    assert results[1]["audit"] == [] and results[1]["events"] == []
    assert [v for *_, v, _ in results[1]["orders"]] == [wo.version + 1]


def test_a_chunk_costs_the_same_queries_for_few_orders_as_for_many(supervisor, operator):
    """Set-based: the statements per chunk do not grow with the orders in it (a field the
    representation reads but the writer did not load would cost a query per order)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    plant = {
        "centers": 1,
        "machines": 1,
        "orders": [
            {"routing": i % 3, "quantity": 20, "due_hours": 1, "rush": False, "started": i == 0}
            for i in range(12)
        ],
    }
    build(plant, supervisor, operator)
    replan(reason="first plan")
    later = timezone.now() + timedelta(hours=3)
    counts = []
    for orders in (WorkOrder.objects.all()[:3], WorkOrder.objects.all()):
        writes = [
            ScheduleWrite(
                wo.pk,
                projected_end=wo.projected_end + timedelta(hours=len(counts) + 1),
                planned={
                    op.pk: (op.planned_start + timedelta(hours=len(counts) + 1), later)
                    for op in wo.operations.all()
                    if op.planned_start
                },
            )
            for wo in orders
        ]
        with CaptureQueriesContext(connection) as queries:
            assert apply_schedules(writes, reason="moved", chunk=100) == len(writes)
        counts.append(len(queries))
    assert counts[0] == counts[1]
