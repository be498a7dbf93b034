"""Concurrent service calls serialise on the row locks (SELECT ... FOR UPDATE on PostgreSQL,
IMMEDIATE transactions on SQLite): of two racing changes, one wins and the other is refused
with a domain error, never both applied.

These tests commit for real (``transaction=True``) and use one connection per thread.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection

from mes import services
from mes.choices import EntityType, OperationStatus, WorkOrderStatus
from mes.errors import Conflict, DomainError, InvalidTransition
from mes.models import AuditRecord, Operation
from tests.factories import make_routing, make_work_order
from tests.support import run_together

Op = OperationStatus
WO = WorkOrderStatus
TIMEOUT = 30


def race(*calls) -> list:
    """Run ``calls`` in threads released together by a barrier. Each result is the call's
    return value or the exception it raised."""
    results = run_together(list(calls), timeout=TIMEOUT)
    unexpected = [r for r in results if not isinstance(r, Operation | DomainError)]
    assert not unexpected, unexpected
    return results


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_completions_of_one_operation(supervisor, operator, other_operator):
    wo = make_work_order(actor=supervisor, steps=2)
    op = services.start_operation(wo.operations.get(sequence=10), operator=operator)
    # Both callers hold the same (running) instance, as two terminals would.
    a = Operation.objects.get(pk=op.pk)
    b = Operation.objects.get(pk=op.pk)

    results = race(
        lambda: services.complete_operation(a, actor=operator),
        lambda: services.complete_operation(b, actor=other_operator),
    )

    winners = [r for r in results if isinstance(r, Operation)]
    losers = [r for r in results if isinstance(r, DomainError)]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    assert type(losers[0]) is InvalidTransition
    op.refresh_from_db()
    assert op.status == Op.DONE
    completions = AuditRecord.objects.filter(
        entity_type=EntityType.OPERATION, entity_id=op.pk, action="complete"
    )
    assert completions.count() == 1
    # The next operation was made ready exactly once.
    following = wo.operations.get(sequence=20)
    assert following.status == Op.READY
    readied = AuditRecord.objects.filter(
        entity_type=EntityType.OPERATION, entity_id=following.pk, action="ready"
    )
    assert readied.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_operations_racing_for_one_machine(supervisor, operator, other_operator):
    routing = make_routing(1)  # one work center with one machine
    machine = routing.steps.get().work_center.machines.get()
    first = make_work_order(actor=supervisor, routing=routing).operations.get()
    second = make_work_order(actor=supervisor, routing=routing).operations.get()

    results = race(
        lambda: services.start_operation(first, operator=operator, machine=machine),
        lambda: services.start_operation(second, operator=other_operator, machine=machine),
    )

    winners = [r for r in results if isinstance(r, Operation)]
    losers = [r for r in results if isinstance(r, DomainError)]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    assert type(losers[0]) is Conflict
    running = Operation.objects.filter(machine=machine, status=Op.RUNNING)
    assert list(running.values_list("pk", flat=True)) == [winners[0].pk]
    loser = second if winners[0].pk == first.pk else first
    loser.refresh_from_db()
    assert (loser.status, loser.machine_id) == (Op.READY, None)
    assert loser.work_order.status == WO.RELEASED
    assert not AuditRecord.objects.filter(
        entity_type=EntityType.OPERATION, entity_id=loser.pk, action="start"
    ).exists()


@pytest.mark.django_db
def test_the_suite_runs_on_the_configured_backend():
    """The PostgreSQL run must really be PostgreSQL (or the concurrency tests prove little)."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        assert connection.vendor == "postgresql"
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            assert cursor.fetchone()[0].startswith("PostgreSQL")
    else:
        assert connection.vendor == "sqlite"
