"""GET /api/v1/confirmations/?after=&limit=: the production performance feed."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import connection, transaction

from mes import services
from mes.formats import iso_utc
from mes.models import Operation, ProductionConfirmation
from tests.factories import make_routing, make_work_order

from .helpers import API, assert_error

pytestmark = pytest.mark.django_db
FEED = f"{API}/confirmations/"
CONFIRMATION_KEYS = {
    "seq",
    "id",
    "work_order",
    "operation_sequence",
    "kind",
    "quantity_good",
    "quantity_scrap",
    "labor_seconds",
    "machine_seconds",
    "materials",
    "scrap_reasons",
    "occurred_at",
}


def feed(client, **params) -> dict:
    response = client.get(FEED, params)
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert set(body) == {"results", "last_seq"}
    return body


def running(supervisor, *, steps: int = 2, number: str | None = None) -> Operation:
    wo = make_work_order(actor=supervisor, steps=steps, number=number)
    return services.start_operation(wo.operations.get(sequence=10), operator=supervisor)


def report(op: Operation, actor, good=0, scrap=0, reason="") -> Operation:
    return services.report_quantity(op, actor=actor, good=good, scrap=scrap, reason=reason)


def test_an_empty_feed(erp_client):
    assert feed(erp_client) == {"results": [], "last_seq": 0}
    assert feed(erp_client, after=7) == {"results": [], "last_seq": 7}


def test_the_representation(erp_client, supervisor):
    op = running(supervisor, number="WO-1001")
    report(op, supervisor, good=5, scrap=1)

    body = feed(erp_client)

    assert body["last_seq"] == 1
    (row,) = body["results"]
    assert set(row) == CONFIRMATION_KEYS
    stored = ProductionConfirmation.objects.get()
    assert row["seq"] == 1
    assert uuid.UUID(row["id"]) == stored.uuid
    assert row["work_order"] == "WO-1001"
    assert row["operation_sequence"] == 10
    assert row["kind"] == "progress"
    assert (row["quantity_good"], row["quantity_scrap"]) == (5, 1)
    assert isinstance(row["labor_seconds"], int | float) and row["labor_seconds"] >= 0
    assert isinstance(row["machine_seconds"], int | float) and row["machine_seconds"] >= 0
    assert row["materials"] == []
    assert row["occurred_at"] == iso_utc(stored.occurred_at)
    assert row["occurred_at"].endswith("Z")


def test_after_and_limit_page_through_the_feed(erp_client, supervisor):
    op = running(supervisor)
    for _ in range(5):
        op = report(op, supervisor, good=1)

    page = feed(erp_client, after=1, limit=2)
    assert [row["seq"] for row in page["results"]] == [2, 3]
    assert page["last_seq"] == 3

    rest = feed(erp_client, after=page["last_seq"], limit=10)
    assert [row["seq"] for row in rest["results"]] == [4, 5]
    assert rest["last_seq"] == 5

    assert feed(erp_client, after=5) == {"results": [], "last_seq": 5}


def test_limit_defaults_to_100_and_goes_up_to_1000(erp_client, supervisor):
    op = running(supervisor)
    for _ in range(101):
        op = report(op, supervisor, good=1)

    assert len(feed(erp_client)["results"]) == 100
    assert feed(erp_client)["last_seq"] == 100
    assert len(feed(erp_client, limit=1000)["results"]) == 101


@pytest.mark.parametrize(
    "params,field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"after": -1}, "after"),
        ({"after": "last"}, "after"),
        ({"after": "1.5"}, "after"),
    ],
)
def test_bad_parameters_are_400(erp_client, params, field):
    assert_error(erp_client.get(FEED, params), 400, "invalid", {field})


def test_deltas_sum_to_each_operations_totals(erp_client, supervisor, operator):
    first = running(supervisor, steps=2, number="WO-A")
    other = running(supervisor, steps=1, number="WO-B")
    first = report(first, operator, good=10, scrap=2)
    other = report(other, operator, good=3)
    first = report(first, operator, good=Decimal("2.5"))
    first = report(first, operator, good=-1, scrap=-1, reason="Miscounted")
    first = services.pause_operation(first, actor=operator, reason="Break")
    first = report(first, operator, scrap=1)
    services.complete_operation(first, actor=operator)
    second = services.start_operation(
        Operation.objects.get(work_order__number="WO-A", sequence=20), operator=operator
    )
    report(second, operator, good=11)

    rows = feed(erp_client, limit=1000)["results"]

    totals: dict[tuple[str, int], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 2)
    for row in rows:
        key = (row["work_order"], row["operation_sequence"])
        totals[key][0] += Decimal(str(row["quantity_good"]))
        totals[key][1] += Decimal(str(row["quantity_scrap"]))
    for op in Operation.objects.select_related("work_order"):
        key = (op.work_order.number, op.sequence)
        assert totals.get(key, [0, 0]) == [op.quantity_good, op.quantity_scrap], key
    assert totals[("WO-A", 10)] == [Decimal("11.5"), Decimal(2)]
    assert totals[("WO-A", 20)] == [Decimal(11), Decimal(0)]
    assert totals[("WO-B", 10)] == [Decimal(3), Decimal(0)]
    kinds = [(r["work_order"], r["operation_sequence"], r["kind"]) for r in rows]
    assert kinds.count(("WO-A", 10, "final")) == 1
    final = next(r for r in rows if r["kind"] == "final")
    assert (final["quantity_good"], final["quantity_scrap"]) == (0, 0)


def test_seq_is_gap_free_and_a_rolled_back_change_gives_its_number_back(erp_client, supervisor):
    op = running(supervisor)
    op = report(op, supervisor, good=1)
    with pytest.raises(RuntimeError), transaction.atomic():
        report(op, supervisor, good=1)
        raise RuntimeError("the caller's transaction fails after the report")
    op = Operation.objects.get(pk=op.pk)
    op = report(op, supervisor, good=2)
    services.complete_operation(op, actor=supervisor)

    rows = feed(erp_client)["results"]

    assert [row["seq"] for row in rows] == [1, 2, 3]
    assert [row["quantity_good"] for row in rows] == [1, 2, 0]


def test_a_confirmation_never_changes_once_visible(erp_client, supervisor):
    op = running(supervisor)
    op = report(op, supervisor, good=4)
    seen = feed(erp_client)["results"]

    op = report(op, supervisor, good=-2, reason="Correction")
    services.complete_operation(op, actor=supervisor)

    again = feed(erp_client)["results"]
    assert again[: len(seen)] == seen
    assert [row["seq"] for row in again] == [1, 2, 3]
    assert again[1]["quantity_good"] == -2  # a correction is a new, negative delta


def test_anonymous_is_401_and_integrator_may_read(anon_client, integrator_client):
    assert_error(anon_client.get(FEED), 401, "not_authenticated")
    assert integrator_client.get(FEED).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_reader_that_stores_last_seq_misses_nothing(erp_client, supervisor):
    """Two threads report quantities while the reader polls with ``after=last_seq``: it gets
    every confirmation exactly once, in seq order, and the seqs are 1..n."""
    ops = [running(supervisor, steps=1, number=f"WO-{k}") for k in range(2)]
    errors: list = []
    writing = [True, True]

    def keep_reporting(k: int) -> None:
        try:
            op = ops[k]
            for _ in range(15):
                op = services.report_quantity(op, actor=supervisor, good=1)
        except BaseException as exc:
            errors.append(exc)
        finally:
            writing[k] = False
            connection.close()

    threads = [threading.Thread(target=keep_reporting, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    seen: list[int] = []
    last = 0
    try:
        while True:
            still_writing = any(writing)
            body = feed(erp_client, after=last, limit=3)
            seen.extend(row["seq"] for row in body["results"])
            last = body["last_seq"]
            if not body["results"]:
                if not still_writing:
                    break
                time.sleep(0.02)  # poll like a client, not in a hot loop (throttling)
    finally:
        for thread in threads:
            thread.join(30)

    assert not errors, errors
    assert seen == list(range(1, 31))
    assert set(ProductionConfirmation.objects.values_list("seq", flat=True)) == set(seen)


# --- Query count ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [3, 30])
def test_feed_query_count_does_not_grow_with_confirmations(
    erp_client, supervisor, django_assert_num_queries, count
):
    routing = make_routing(1, machines_per_center=count)
    machines = list(routing.steps.get().work_center.machines.order_by("pk"))
    for i in range(count):  # one confirmation per order, so every row has its own order
        wo = make_work_order(actor=supervisor, routing=routing)
        op = services.start_operation(wo.operations.get(), operator=supervisor, machine=machines[i])
        report(op, supervisor, good=1)
    feed(erp_client, limit=1)  # the client's last_used_at is written once

    # The confirmations with their orders' numbers (the token's client is cached since the
    # first request).
    with django_assert_num_queries(1):
        body = feed(erp_client, limit=1000)

    assert len(body["results"]) == count
    assert len({row["work_order"] for row in body["results"]}) == count
