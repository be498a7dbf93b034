"""PUT /api/v1/work-orders/{number}/: create or update by ERP number, idempotently."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from rest_framework.test import APIClient

from erp_sync.models import EventType, OutboxEvent
from mes import services
from mes.models import Operation, Routing, WorkOrder
from tests.factories import RoutingFactory, RoutingStepFactory, make_routing

from .helpers import (
    CURRENT_OPERATION_KEYS,
    OPERATION_KEYS,
    WORK_ORDER_KEYS,
    assert_error,
    assert_etag,
    due,
    iso,
    updated_events,
    wo_body,
    wo_url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def routing():
    """A product with an active three-step routing."""
    return make_routing(3)


@pytest.fixture
def one_step():
    """A product with an active one-step routing: its operation's good count is the order's."""
    return make_routing(1)


def put(client, number, body, **headers):
    return client.put(wo_url(number), body, format="json", **headers)


def start_and_report(wo: WorkOrder, actor, good: int) -> Operation:
    op = services.start_operation(wo.operations.get(sequence=10), operator=actor)
    if good:
        op = services.report_quantity(op, actor=actor, good=good)
    return op


def snapshot(number: str) -> tuple:
    wo = WorkOrder.objects.get(number=number)
    ops = list(wo.operations.order_by("sequence").values_list("pk", "sequence", "status"))
    return (
        wo.version,
        wo.quantity,
        wo.product_id,
        wo.routing_id,
        wo.due_date,
        wo.priority,
        wo.status,
        wo.updated_at,
        ops,
        updated_events(number),
    )


# --- Create -----------------------------------------------------------------------------------


def test_put_creates_a_released_order(erp_client, routing):
    due_date = due(5)
    response = put(
        erp_client, "WO-1001", wo_body(routing.product.code, quantity=500, due_date=iso(due_date))
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == WORK_ORDER_KEYS
    assert body["number"] == "WO-1001"
    assert body["product"] == routing.product.code
    assert body["routing"] == routing.code
    assert body["quantity"] == 500
    assert body["due_date"] == due_date.isoformat().replace("+00:00", "Z")
    assert body["priority"] == "normal"
    assert body["status"] == "released"
    assert body["quantity_good"] == 0 and body["quantity_scrap"] == 0
    assert body["actual_start"] is None and body["actual_end"] is None
    assert body["projected_end"] is None and body["at_risk"] is False
    assert body["updated_at"].endswith("Z")
    assert [op["sequence"] for op in body["operations"]] == [10, 20, 30]
    assert [op["status"] for op in body["operations"]] == ["ready", "pending", "pending"]
    assert all(set(op) == OPERATION_KEYS for op in body["operations"])
    assert set(body["current_operation"]) == CURRENT_OPERATION_KEYS
    assert body["current_operation"]["sequence"] == 10
    assert body["current_operation"]["status"] == "ready"

    wo = WorkOrder.objects.get(number="WO-1001")
    assert assert_etag(response) == erp_client.get(wo_url("WO-1001"))["ETag"]
    assert wo.quantity == Decimal(500) and wo.due_date == due_date
    assert updated_events("WO-1001") == 1


def test_put_with_release_false_leaves_the_order_planned(erp_client, routing):
    response = put(erp_client, "WO-P", wo_body(routing.product.code, release=False))

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "planned"
    assert body["operations"] == [] and body["current_operation"] is None
    assert WorkOrder.objects.get(number="WO-P").status == "planned"


def test_put_routing_defaults_to_the_products_active_routing(erp_client, routing):
    RoutingFactory(product=routing.product, code="OLD", active=False, version=2)

    response = put(erp_client, "WO-D", wo_body(routing.product.code, priority="rush"))

    assert response.status_code == 201
    assert response.json()["routing"] == routing.code
    assert response.json()["priority"] == "rush"


def test_put_names_a_routing_other_than_the_active_one(erp_client, routing):
    other = RoutingFactory(product=routing.product, code="ALT", active=False, version=2)
    RoutingStepFactory(routing=other, sequence=10)

    response = put(erp_client, "WO-ALT", wo_body(routing.product.code, routing="ALT"))

    assert response.status_code == 201, response.content
    assert response.json()["routing"] == "ALT"
    assert [op["sequence"] for op in response.json()["operations"]] == [10]


def test_a_number_with_every_allowed_character_is_accepted(erp_client, routing):
    number = "Ab9._-" + "x" * 58  # 64 characters
    response = put(erp_client, number, wo_body(routing.product.code))
    assert response.status_code == 201
    assert response.json()["number"] == number


# --- Idempotency ------------------------------------------------------------------------------


def test_the_same_body_twice_gives_one_order_and_no_second_event(erp_client, routing):
    body = wo_body(routing.product.code, quantity=250, notes="Blue paint", priority="rush")
    first = put(erp_client, "WO-1", body)
    events_after_first = OutboxEvent.objects.filter(event_type=EventType.WORK_ORDER_UPDATED).count()

    second = put(erp_client, "WO-1", body)

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()
    assert second["ETag"] == first["ETag"]
    assert WorkOrder.objects.filter(number="WO-1").count() == 1
    assert events_after_first == 1
    assert OutboxEvent.objects.filter(event_type=EventType.WORK_ORDER_UPDATED).count() == 1


def test_the_same_instant_in_another_offset_is_unchanged(erp_client, routing):
    due_date = due(3)
    put(erp_client, "WO-TZ", wo_body(routing.product.code, due_date=iso(due_date)))
    before = snapshot("WO-TZ")

    local = due_date.astimezone(ZoneInfo("America/New_York"))
    again = put(erp_client, "WO-TZ", wo_body(routing.product.code, due_date=local.isoformat()))

    assert again.status_code == 200
    assert snapshot("WO-TZ") == before


def test_a_misspelt_release_is_refused_not_taken_for_the_default(erp_client, routing):
    """ "relase": false once released the order (the default for a left-out release)."""
    body = wo_body(routing.product.code, relase=False)

    created = put(erp_client, "WO-T", body)
    planned = put(erp_client, "WO-P3", wo_body(routing.product.code, release=False))
    updated = put(erp_client, "WO-P3", {**wo_body(routing.product.code, quantity=7), "relase": 0})

    errors = assert_error(created, 400, "invalid", {"relase"})["errors"]
    assert errors["relase"][0].startswith("Unknown field; expected product, quantity")
    assert "release" in errors["relase"][0]
    assert not WorkOrder.objects.filter(number="WO-T").exists()
    assert planned.status_code == 201
    assert_error(updated, 400, "invalid", {"relase"})
    wo = WorkOrder.objects.get(number="WO-P3")
    assert (wo.status, wo.quantity) == ("planned", 100)
    assert updated_events("WO-P3") == 1


def test_a_planned_order_put_unchanged_with_release_false_stays_planned(erp_client, routing):
    body = wo_body(routing.product.code, release=False)
    put(erp_client, "WO-P2", body)
    again = put(erp_client, "WO-P2", body)

    assert again.status_code == 200
    assert again.json()["status"] == "planned"
    assert updated_events("WO-P2") == 1


# --- Update -----------------------------------------------------------------------------------


def test_put_updates_the_erp_fields(erp_client, routing):
    put(erp_client, "WO-U", wo_body(routing.product.code))
    new_due = due(10)

    response = put(
        erp_client,
        "WO-U",
        wo_body(
            routing.product.code,
            quantity=120.5,
            due_date=iso(new_due),
            priority="rush",
            notes="Expedite",
        ),
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["quantity"] == 120.5
    assert body["priority"] == "rush"
    assert body["due_date"] == new_due.isoformat().replace("+00:00", "Z")
    wo = WorkOrder.objects.get(number="WO-U")
    assert (wo.quantity, wo.priority, wo.notes) == (Decimal("120.5"), "rush", "Expedite")
    assert updated_events("WO-U") == 2
    last = OutboxEvent.objects.filter(aggregate_key="WO-U").order_by("id").last()
    assert last.payload["quantity"] == 120.5


def test_put_release_true_releases_a_planned_order(erp_client, routing):
    put(erp_client, "WO-R", wo_body(routing.product.code, release=False))

    response = put(erp_client, "WO-R", wo_body(routing.product.code))

    assert response.status_code == 200
    assert response.json()["status"] == "released"
    assert len(response.json()["operations"]) == 3


def test_put_can_change_the_routing_before_production_starts(erp_client, routing):
    other = RoutingFactory(product=routing.product, code="TWO-STEP", active=False, version=2)
    RoutingStepFactory(routing=other, sequence=10)
    RoutingStepFactory(routing=other, sequence=20)
    put(erp_client, "WO-RT", wo_body(routing.product.code))

    response = put(erp_client, "WO-RT", wo_body(routing.product.code, routing="TWO-STEP"))

    assert response.status_code == 200, response.content
    assert response.json()["routing"] == "TWO-STEP"
    assert [op["sequence"] for op in response.json()["operations"]] == [10, 20]
    assert WorkOrder.objects.get(number="WO-RT").operations.count() == 2


def test_lowering_quantity_to_what_is_produced_is_allowed(erp_client, one_step, supervisor):
    put(erp_client, "WO-Q", wo_body(one_step.product.code, quantity=100))
    start_and_report(WorkOrder.objects.get(number="WO-Q"), supervisor, 60)

    response = put(erp_client, "WO-Q", wo_body(one_step.product.code, quantity=60))

    assert response.status_code == 200, response.content
    assert response.json()["quantity"] == 60


# --- Refusals ---------------------------------------------------------------------------------


def test_lowering_quantity_below_produced_is_a_conflict(erp_client, one_step, supervisor):
    put(erp_client, "WO-Q", wo_body(one_step.product.code, quantity=100))
    start_and_report(WorkOrder.objects.get(number="WO-Q"), supervisor, 60)
    before = snapshot("WO-Q")

    response = put(erp_client, "WO-Q", wo_body(one_step.product.code, quantity=50))

    assert_error(response, 409, "conflict", {"quantity"})
    assert snapshot("WO-Q") == before


def test_changing_the_routing_after_production_started_is_a_conflict(
    erp_client, routing, supervisor
):
    other = RoutingFactory(product=routing.product, code="ALT", active=False, version=2)
    RoutingStepFactory(routing=other, sequence=10)
    put(erp_client, "WO-S", wo_body(routing.product.code))
    start_and_report(WorkOrder.objects.get(number="WO-S"), supervisor, 0)
    before = snapshot("WO-S")

    response = put(erp_client, "WO-S", wo_body(routing.product.code, routing="ALT"))

    assert_error(response, 409, "conflict", {"routing"})
    assert snapshot("WO-S") == before


def test_changing_the_product_after_production_started_is_a_conflict(
    erp_client, routing, supervisor
):
    other = make_routing(2)
    put(erp_client, "WO-S", wo_body(routing.product.code))
    start_and_report(WorkOrder.objects.get(number="WO-S"), supervisor, 0)
    before = snapshot("WO-S")

    response = put(erp_client, "WO-S", wo_body(other.product.code))

    assert_error(response, 409, "conflict", {"product"})
    assert snapshot("WO-S") == before


def test_changing_a_cancelled_order_is_a_conflict(erp_client, routing, supervisor):
    put(erp_client, "WO-C", wo_body(routing.product.code))
    services.cancel_work_order(
        WorkOrder.objects.get(number="WO-C"), actor=supervisor, reason="Customer cancelled"
    )
    before = snapshot("WO-C")

    response = put(erp_client, "WO-C", wo_body(routing.product.code, quantity=7))

    assert_error(response, 409, "conflict")
    assert snapshot("WO-C") == before


def test_if_match_with_a_stale_etag_is_precondition_failed(erp_client, routing):
    first = put(erp_client, "WO-E", wo_body(routing.product.code))
    stale = first["ETag"]
    put(erp_client, "WO-E", wo_body(routing.product.code, quantity=90))
    before = snapshot("WO-E")

    response = put(
        erp_client, "WO-E", wo_body(routing.product.code, quantity=80), HTTP_IF_MATCH=stale
    )

    assert_error(response, 412, "precondition_failed")
    assert snapshot("WO-E") == before


def test_if_match_with_the_current_etag_updates(erp_client, routing):
    current = put(erp_client, "WO-E", wo_body(routing.product.code))["ETag"]

    response = put(
        erp_client, "WO-E", wo_body(routing.product.code, quantity=80), HTTP_IF_MATCH=current
    )

    assert response.status_code == 200
    assert response.json()["quantity"] == 80
    assert response["ETag"] != current


def test_if_match_on_an_order_that_does_not_exist_is_precondition_failed(erp_client, routing):
    response = put(erp_client, "WO-NEW", wo_body(routing.product.code), HTTP_IF_MATCH='"wo-1-v1"')

    assert_error(response, 412, "precondition_failed")
    assert not WorkOrder.objects.filter(number="WO-NEW").exists()


def test_unknown_product_is_refused(erp_client, routing):
    response = put(erp_client, "WO-X", wo_body("NO-SUCH-PRODUCT"))

    assert_error(response, 400, "unknown_product", {"product"})
    assert not WorkOrder.objects.exists()


def test_unknown_routing_is_refused(erp_client, routing):
    response = put(erp_client, "WO-X", wo_body(routing.product.code, routing="NO-SUCH"))

    assert_error(response, 400, "unknown_routing", {"routing"})
    assert not WorkOrder.objects.exists()


def test_a_routing_of_another_product_is_invalid(erp_client, routing):
    other = make_routing(1)
    response = put(erp_client, "WO-X", wo_body(routing.product.code, routing=other.code))

    assert_error(response, 400, "invalid", {"routing"})
    assert not WorkOrder.objects.exists()


def test_a_product_without_active_routing_needs_a_routing(erp_client, routing):
    Routing.objects.filter(pk=routing.pk).update(active=False)

    response = put(erp_client, "WO-X", wo_body(routing.product.code))

    assert_error(response, 400, "invalid", {"routing"})
    assert not WorkOrder.objects.exists()


@pytest.mark.parametrize(
    "field,value",
    [
        ("quantity", 0),
        ("quantity", -5),
        ("quantity", "abc"),
        ("quantity", None),
        ("quantity", True),
        ("quantity", 1e20),
        ("quantity", "NaN"),
        ("quantity", "Infinity"),
        ("quantity", 1.0001),
        ("due_date", "2026-12-01T14:00:00"),  # naive
        ("due_date", "tomorrow"),
        ("due_date", None),
        ("priority", "urgent"),
        ("release", "maybe"),
        ("product", ""),
        ("product", "x" * 65),
        ("product", ["A"]),
        ("notes", {"a": 1}),
    ],
)
def test_invalid_fields_are_refused(erp_client, routing, field, value):
    response = put(erp_client, "WO-V", wo_body(routing.product.code, **{field: value}))

    assert_error(response, 400, "invalid", {field})
    assert not WorkOrder.objects.exists()


@pytest.mark.parametrize("missing", ["product", "quantity", "due_date"])
def test_required_fields(erp_client, routing, missing):
    body = wo_body(routing.product.code)
    del body[missing]

    response = put(erp_client, "WO-V", body)

    assert_error(response, 400, "invalid", {missing})


def test_anonymous_put_is_refused(anon_client, routing):
    response = put(anon_client, "WO-A", wo_body(routing.product.code))
    assert_error(response, 401, "not_authenticated")
    assert not WorkOrder.objects.exists()


def test_integrator_may_put_work_orders_too(integrator_client, routing):
    response = put(integrator_client, "WO-I", wo_body(routing.product.code))
    assert response.status_code == 201


# --- Concurrency ------------------------------------------------------------------------------


def race_puts(token: str, number: str, body: dict) -> list:
    """Send the same PUT from two threads released together; their status codes."""
    barrier = threading.Barrier(2, timeout=20)
    statuses: list = [None, None]

    def send(i: int) -> None:
        try:
            client = APIClient()
            client.raise_request_exception = False
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            barrier.wait()
            statuses[i] = put(client, number, body).status_code
        except BaseException as exc:
            statuses[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


@pytest.mark.django_db(transaction=True)
def test_two_identical_concurrent_puts_create_one_order(erp_client, routing):
    """Two deliveries of the same ERP message racing: one creates (201), the other finds it
    unchanged (200); never a 5xx or a 409. Several rounds, so that the race happens."""
    body = wo_body(routing.product.code)
    erp_client.get(wo_url("warm-up"))  # writes the client's last_used_at before the race
    outcomes = {}
    for round_ in range(5):
        number = f"WO-RACE-{round_}"
        outcomes[number] = sorted(race_puts(erp_client.token, number, body), key=str)

    assert all(statuses == [200, 201] for statuses in outcomes.values()), outcomes
    for number in outcomes:
        assert WorkOrder.objects.filter(number=number).count() == 1
        assert updated_events(number) == 1


def test_put_due_date_in_the_past_is_accepted_as_given(erp_client, routing):
    """The ERP owns due dates; a past one is stored (the order is simply late)."""
    past = due(-2) - timedelta(hours=1)
    response = put(erp_client, "WO-LATE", wo_body(routing.product.code, due_date=iso(past)))
    assert response.status_code == 201
    assert WorkOrder.objects.get(number="WO-LATE").due_date == past
