"""POST /api/v1/work-orders/{number}/hold/ | release/ | cancel/."""

from __future__ import annotations

import pytest

from mes import services
from mes.models import WorkOrder
from tests.factories import make_routing, make_work_order

from .helpers import WORK_ORDER_KEYS, assert_error, assert_etag, updated_events, wo_url

pytestmark = pytest.mark.django_db


def order_in(status: str, supervisor, number: str = "WO-T") -> WorkOrder:
    """A one-step order brought to ``status`` through the services."""
    routing = make_routing(1)
    if status == "planned":
        return make_work_order(actor=supervisor, routing=routing, number=number, release=False)
    wo = make_work_order(actor=supervisor, routing=routing, number=number)
    if status in ("in_progress", "completed"):
        op = services.start_operation(wo.operations.get(), operator=supervisor)
        if status == "completed":
            services.complete_operation(op, actor=supervisor)
    elif status == "on_hold":
        services.hold_work_order(wo, actor=supervisor, reason="Material missing")
    elif status == "cancelled":
        services.cancel_work_order(wo, actor=supervisor, reason="Not needed")
    wo.refresh_from_db()
    assert wo.status == status
    return wo


def post(client, number: str, action: str, body: dict | None = None, **headers):
    return client.post(wo_url(number, action), body or {}, format="json", **headers)


def state(number: str) -> tuple:
    wo = WorkOrder.objects.get(number=number)
    ops = list(wo.operations.order_by("sequence").values_list("status", flat=True))
    return wo.status, wo.version, ops, updated_events(number)


# --- Allowed ----------------------------------------------------------------------------------


def test_hold_a_released_order(erp_client, supervisor):
    order_in("released", supervisor)

    response = post(erp_client, "WO-T", "hold", {"reason": "Customer asked to wait"})

    assert response.status_code == 200, response.content
    assert set(response.json()) == WORK_ORDER_KEYS
    assert response.json()["status"] == "on_hold"
    wo = WorkOrder.objects.get(number="WO-T")
    assert wo.status == "on_hold"
    assert assert_etag(response) == erp_client.get(wo_url("WO-T"))["ETag"]
    record = wo.audit_records.get(action="hold")
    assert record.reason == "Customer asked to wait"
    assert record.actor_name == "api:erp"


def test_hold_pauses_the_running_operation_and_release_resumes_the_order(erp_client, supervisor):
    order_in("in_progress", supervisor)

    held = post(erp_client, "WO-T", "hold", {"reason": "Machine check"})
    assert held.status_code == 200
    assert held.json()["status"] == "on_hold"
    assert held.json()["operations"][0]["status"] == "paused"

    released = post(erp_client, "WO-T", "release")
    assert released.status_code == 200
    assert released.json()["status"] == "in_progress"  # back to what the hold interrupted


def test_release_a_planned_order_creates_its_operations(erp_client, supervisor):
    order_in("planned", supervisor)

    response = post(erp_client, "WO-T", "release", {"reason": "Material arrived"})

    assert response.status_code == 200
    assert response.json()["status"] == "released"
    assert [op["status"] for op in response.json()["operations"]] == ["ready"]


def test_release_needs_no_body(erp_client, supervisor):
    order_in("planned", supervisor)
    response = erp_client.post(wo_url("WO-T", "release"))
    assert response.status_code == 200
    assert response.json()["status"] == "released"


@pytest.mark.parametrize("status", ["planned", "released", "on_hold"])
def test_cancel(erp_client, supervisor, status):
    order_in(status, supervisor)

    response = post(erp_client, "WO-T", "cancel", {"reason": "Order withdrawn"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["current_operation"] is None
    assert all(op["status"] == "cancelled" for op in body["operations"])
    assert WorkOrder.objects.get(number="WO-T").status == "cancelled"


# --- Refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,action",
    [
        ("planned", "hold"),
        ("on_hold", "hold"),
        ("completed", "hold"),
        ("cancelled", "hold"),
        ("released", "release"),
        ("in_progress", "release"),
        ("completed", "release"),
        ("cancelled", "release"),
        ("in_progress", "cancel"),
        ("completed", "cancel"),
        ("cancelled", "cancel"),
    ],
)
def test_a_transition_the_state_machine_forbids_is_409(erp_client, supervisor, status, action):
    order_in(status, supervisor)
    before = state("WO-T")

    response = post(erp_client, "WO-T", action, {"reason": "Because"})

    assert_error(response, 409, "invalid_transition")
    assert state("WO-T") == before


@pytest.mark.parametrize("action", ["hold", "cancel"])
@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": None}])
def test_hold_and_cancel_need_a_reason(erp_client, supervisor, action, body):
    order_in("released", supervisor)
    before = state("WO-T")

    response = post(erp_client, "WO-T", action, body)

    assert_error(response, 400, "invalid", {"reason"})
    assert state("WO-T") == before


@pytest.mark.parametrize("action", ["hold", "release", "cancel"])
def test_unknown_order_is_404(erp_client, db, action):
    assert_error(post(erp_client, "WO-NONE", action, {"reason": "x"}), 404, "not_found")


@pytest.mark.parametrize(
    "status,action", [("released", "hold"), ("on_hold", "release"), ("released", "cancel")]
)
def test_if_match_with_a_stale_etag_is_412_and_changes_nothing(
    erp_client, supervisor, status, action
):
    wo = order_in(status, supervisor)
    stale = erp_client.get(wo_url("WO-T"))["ETag"]
    services.update_work_order(wo, actor=supervisor, notes="Changed meanwhile")
    before = state("WO-T")

    response = post(erp_client, "WO-T", action, {"reason": "x"}, HTTP_IF_MATCH=stale)

    assert_error(response, 412, "precondition_failed")
    assert state("WO-T") == before


def test_if_match_with_the_current_etag_is_applied(erp_client, supervisor):
    order_in("released", supervisor)
    etag = erp_client.get(wo_url("WO-T"))["ETag"]

    response = post(erp_client, "WO-T", "hold", {"reason": "x"}, HTTP_IF_MATCH=etag)

    assert response.status_code == 200
    assert response.json()["status"] == "on_hold"
    assert response["ETag"] != etag


def test_transitions_are_post_only(erp_client, supervisor):
    order_in("released", supervisor)
    assert_error(erp_client.get(wo_url("WO-T", "hold")), 405, "method_not_allowed")
    assert_error(
        erp_client.put(wo_url("WO-T", "cancel"), {"reason": "x"}, format="json"),
        405,
        "method_not_allowed",
    )


def test_anonymous_transition_is_401(anon_client, supervisor):
    order_in("released", supervisor)
    before = state("WO-T")
    assert_error(post(anon_client, "WO-T", "hold", {"reason": "x"}), 401, "not_authenticated")
    assert state("WO-T") == before
