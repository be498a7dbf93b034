"""Booking PLC counts in bulk writes exactly what one ``report_quantity`` per machine
writes (totals, confirmations in the same gap-free ``seq`` order, audit records, events,
unassigned counts, rollups), and a booking worker killed in the middle of a pass counts
nothing twice and loses nothing."""

from __future__ import annotations

import json
import signal
import sys
from datetime import timedelta
from decimal import Decimal

import hypothesis
import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import strategies as st

from erp_sync.models import OutboxEvent
from erp_sync.services import upsert_endpoint
from mes import services
from mes.errors import DomainError
from mes.models import AuditRecord, Operation, ProductionConfirmation, WorkOrder
from mes.performance.models import MachineBucket
from shopfloor.models import PlcStatus, UnassignedCount
from shopfloor.plc.services import book_pending_counts
from tests.factories import make_work_order
from tests.mes.marks import last_id
from tests.support import ChildProcess, subprocess_database_url, wait_until


class _Undo(Exception):
    """Raised to roll one variant back."""


machines = st.lists(
    st.fixed_dictionaries(
        {
            "operation": st.sampled_from(["running", "running", "none", "held", "paused"]),
            # 10**12 parts: a counter gone wild, refused by the service (unassigned).
            "good": st.integers(min_value=0, max_value=60) | st.just(10**12),
            "scrap": st.integers(min_value=0, max_value=4),
            "open_unassigned": st.booleans(),
        }
    ),
    min_size=1,
    max_size=7,
)


def build(specs: list[dict], supervisor, operator, *, started_minutes_ago: int = 30) -> list:
    started = timezone.now() - timedelta(minutes=started_minutes_ago)
    machines = []
    for spec in specs:
        wo = make_work_order(actor=supervisor, steps=1, quantity=500)
        op = wo.operations.get()
        machine = op.work_center.machines.get()
        if spec["operation"] != "none":
            op = services.start_operation(op, operator=operator, machine=machine, at=started)
        if spec["operation"] == "held":
            services.hold_work_order(wo, actor=supervisor, reason="Quality hold")
        elif spec["operation"] == "paused":
            services.pause_operation(op, actor=operator, reason="Break")
        if spec["open_unassigned"]:
            UnassignedCount.objects.create(
                machine=machine, good=3, scrap=1, first_at=started, last_at=started, note="x"
            )
        PlcStatus.objects.create(
            machine=machine, pending_good=spec["good"], pending_scrap=spec["scrap"]
        )
        machines.append(machine)
    return machines


def written(audit_after: int, event_after: int, confirmation_after: int) -> dict:
    """What a booking wrote, without ids, uuids and clock times (taken at other moments by
    the two runs), but with their order; ``seq`` relative to the first of the pass."""

    def without(data: dict, *keys: str) -> dict:
        return {k: v for k, v in data.items() if k not in keys}

    confirmations = list(ProductionConfirmation.objects.filter(id__gt=confirmation_after))
    first_seq = min((c.seq for c in confirmations), default=0)
    orders = list(WorkOrder.objects.order_by("pk"))
    return {
        "orders": [
            (
                wo.number,
                wo.quantity_good,
                wo.quantity_scrap,
                wo.version,
                without(json.loads(wo.rendered), "updated_at"),
            )
            for wo in orders
        ],
        "feed": [wo.number for wo in sorted(orders, key=lambda wo: wo.updated_at)],
        "operations": list(
            Operation.objects.order_by("pk").values_list(
                "pk", "quantity_good", "quantity_scrap", "confirmed_run_seconds", "version"
            )
        ),
        "confirmations": [
            (
                c.seq - first_seq,
                c.work_order_id,
                c.operation_id,
                c.kind,
                c.quantity_good,
                c.quantity_scrap,
                c.labor_seconds,
                c.machine_seconds,
                c.scrap_reasons,
                c.occurred_at,
            )
            for c in sorted(confirmations, key=lambda c: c.seq)
        ],
        "audit": list(
            AuditRecord.objects.filter(id__gt=audit_after)
            .order_by("id")
            .values_list(
                "occurred_at",
                "actor_name",
                "entity_type",
                "entity_id",
                "work_order_id",
                "action",
                "changes",
                "reason",
            )
        ),
        "events": [
            (e.event_type, e.aggregate_key, without(e.payload, "updated_at", "id", "seq"))
            for e in OutboxEvent.objects.filter(id__gt=event_after).order_by("id")
        ],
        "pending": list(
            PlcStatus.objects.order_by("machine_id").values_list(
                "machine_id", "pending_good", "pending_scrap"
            )
        ),
        "unassigned": list(
            UnassignedCount.objects.order_by("machine_id", "id").values_list(
                "machine_id", "good", "scrap", "note", "first_at", "last_at", "closed_at"
            )
        ),
        "rollups": [
            {k: v for k, v in row.items() if k != "id"}
            for row in MachineBucket.objects.order_by("machine_id", "start").values()
        ],
    }


def book_both_ways(at, chunk: int) -> list:
    marks = last_id(AuditRecord), last_id(OutboxEvent), last_id(ProductionConfirmation)
    variants = []
    for bulk in (False, True):
        try:
            with transaction.atomic():
                summary = book_pending_counts(at=at, bulk=bulk, chunk=chunk)
                variants.append((summary, written(*marks)))
                raise _Undo
        except _Undo:
            pass
    return variants


@pytest.fixture
def endpoint(db):
    upsert_endpoint(
        "erp",
        url="http://127.0.0.1:9/events",
        secret="s" * 32,
        event_types=["confirmation.created", "work_order.updated"],
        active=True,
    )


@hypothesis.settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@hypothesis.given(specs=machines, chunk=st.integers(min_value=1, max_value=4))
def test_bulk_booking_writes_what_one_report_per_machine_writes(
    specs, chunk, supervisor, operator, endpoint
):
    try:
        with transaction.atomic():
            build(specs, supervisor, operator)
            (one_by_one, rows), (in_bulk, bulk_rows) = book_both_ways(timezone.now(), chunk)
            assert in_bulk == one_by_one
            assert bulk_rows == rows
            hypothesis.event(f"booked {in_bulk.booked}, unassigned {in_bulk.unassigned}")
            raise _Undo
    except _Undo:
        pass


def test_reports_on_one_order_in_one_pass_follow_each_other(supervisor, operator, endpoint):
    """Several reports on one operation in one call: each sees the one before (versions,
    representations and sequence numbers as consecutive ``report_quantity`` calls)."""
    wo = make_work_order(actor=supervisor, steps=1, quantity=50)
    op = services.start_operation(wo.operations.get(), operator=operator)
    plc = services.Actor.system("plc:test")
    reports = [
        services.QuantityReport(op.pk, plc, good=5),
        services.QuantityReport(op.pk, plc, good=-9),  # refused: a correction needs a reason
        services.QuantityReport(op.pk, plc, good=-2, reason="Miscounted"),
        services.QuantityReport(op.pk, plc, scrap=1, scrap_reason="NOPE"),  # unknown reason
        services.QuantityReport(op.pk + 999, plc, good=1),  # no such operation
        services.QuantityReport(op.pk, plc, good=3, scrap=Decimal("0.5")),
    ]
    at = timezone.now()
    marks = last_id(AuditRecord), last_id(OutboxEvent), last_id(ProductionConfirmation)
    variants = []
    for bulk in (False, True):
        try:
            with transaction.atomic():
                if bulk:
                    results = services.report_quantities(reports, at=at)
                else:
                    results = []
                    for r in reports:
                        try:
                            results.append(
                                services.report_quantity(
                                    Operation.objects.get(pk=r.operation_id),
                                    actor=r.actor,
                                    good=r.good,
                                    scrap=r.scrap,
                                    reason=r.reason,
                                    scrap_reason=r.scrap_reason,
                                    at=at,
                                )
                            )
                        except (DomainError, Operation.DoesNotExist) as exc:
                            results.append(exc)
                refused = [isinstance(r, Exception) for r in results]
                variants.append((refused, written(*marks)))
                raise _Undo
        except _Undo:
            pass
    assert variants[0][0] == variants[1][0] == [False, True, False, True, True, False]
    assert variants[1][1] == variants[0][1]
    assert [c[4] for c in variants[1][1]["confirmations"]] == [5, -2, 3]


def test_a_pass_costs_the_same_queries_for_few_machines_as_for_many(supervisor, operator):
    from django.test.utils import CaptureQueriesContext

    spec = {"operation": "running", "good": 4, "scrap": 1, "open_unassigned": False}
    none = {"operation": "none", "good": 2, "scrap": 0, "open_unassigned": True}
    counts = []
    for size in (1, 2, 8):  # the first pass creates the confirmations' clock
        machines = build([spec] * size + [none] * size, supervisor, operator)
        with CaptureQueriesContext(connection) as queries:
            summary = book_pending_counts(machine_ids=[m.pk for m in machines])
        assert (summary.booked, summary.unassigned) == (size, size)
        counts.append(len(queries))
    assert counts[1] == counts[2]


CHILD = """
import django, sys
django.setup()
from shopfloor.plc.services import book_pending_counts
print("booking", flush=True)
book_pending_counts(chunk=int(sys.argv[1]))
print("done", flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_pass_counts_nothing_twice_and_loses_nothing(
    tmp_path, supervisor, operator
):
    if connection.vendor != "postgresql":
        pytest.skip("needs row locks held by another session: PostgreSQL")
    import os

    import psycopg

    specs = [{"operation": "running", "good": 7 + i % 5, "scrap": i % 2} for i in range(24)]
    machines = build([s | {"open_unassigned": False} for s in specs], supervisor, operator)
    expected = {m.pk: (s["good"], s["scrap"]) for m, s in zip(machines, specs, strict=True)}
    # Another session holds the order of the 15th machine: the worker books the chunks
    # before it (5 machines each), then waits inside the third chunk until it is killed.
    blocked = Operation.objects.get(machine=machines[14], status="running").work_order_id
    url = subprocess_database_url()
    holder = psycopg.connect(url)
    holder.execute("SELECT id FROM mes_workorder WHERE id = %s FOR UPDATE", [blocked])
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "booking-kill-test"}
    worker = ChildProcess([sys.executable, "-c", CHILD, "5"], env, tmp_path / "worker.log")
    try:
        worker.start()

        def booked_machines() -> int:
            return PlcStatus.objects.filter(pending_good=0, pending_scrap=0).count()

        wait_until("two chunks booked", lambda: booked_machines() >= 10, 30, worker)
        wait_until(
            "the worker waiting for the lock",
            lambda: (
                holder.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.datname = current_database()"
                ).fetchone()[0]
                > 0
            ),
            30,
            worker,
        )
        assert booked_machines() == 10
        worker.kill(signal.SIGKILL)
    finally:
        worker.kill()
        holder.rollback()
        holder.close()

    summary = book_pending_counts()  # the next pass (waits for the dead session's rollback)

    assert summary.booked == 14
    for machine in machines:
        op = Operation.objects.get(machine=machine, status="running")
        assert (op.quantity_good, op.quantity_scrap) == expected[machine.pk]
        assert op.confirmations.count() == 1
    seqs = sorted(ProductionConfirmation.objects.values_list("seq", flat=True))
    assert seqs == list(range(seqs[0], seqs[0] + 24))
    assert not PlcStatus.objects.exclude(pending_good=0, pending_scrap=0).exists()
    assert not UnassignedCount.objects.exists()
