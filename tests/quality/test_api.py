"""The quality API (results feed, nonconformances), inspection plans in the routing master
data, and scrap reasons in confirmations."""

from __future__ import annotations

import pytest

from mes import services
from mes.quality import services as quality
from mes.quality.models import InspectionCharacteristic
from tests.erp_sync.conftest import bearer_client
from tests.factories import ProductFactory, WorkCenterFactory


@pytest.fixture
def erp(db):
    from erp_sync.models import Scope

    return bearer_client("erp-q", Scope.ERP)


@pytest.fixture
def integrator(db):
    from erp_sync.models import Scope

    return bearer_client("int-q", Scope.INTEGRATOR)


@pytest.fixture
def anon_client():
    from rest_framework.test import APIClient

    return APIClient()


def started(wo, operator):
    return services.start_operation(wo.operations.order_by("sequence").first(), operator=operator)


def test_results_feed_is_gap_free_and_shows_corrections(erp, quality_order, operator):
    op = started(quality_order, operator)
    check = op.checks.get()
    first = quality.record_result(op, check=check, values=["8.01"], actor=operator)
    quality.correct_result(first, values=["8.02"], reason="Typo", actor=operator)
    body = erp.get("/api/v1/quality/results/?after=0").json()
    assert [r["seq"] for r in body["results"]] == [1, 2] and body["last_seq"] == 2
    original, correction = body["results"]
    assert original["values"] == ["8.01"] and original["verdict"] == "pass"
    assert correction["version"] == 2 and correction["supersedes"] == 1
    assert correction["correction_reason"] == "Typo"
    assert correction["series"].endswith("/10/HOLE-D") and correction["lower_limit"] == 7.95
    assert erp.get("/api/v1/quality/results/?after=2").json() == {"results": [], "last_seq": 2}


@pytest.mark.parametrize("query", ["after=-1", "after=x", "limit=0", "limit=1001"])
def test_results_feed_bad_query(erp, query):
    response = erp.get(f"/api/v1/quality/results/?{query}")
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_nonconformances_by_status(erp, quality_order, operator):
    op = started(quality_order, operator)
    quality.record_result(op, check=op.checks.get(), values=["8.5"], actor=operator)
    open_ = erp.get("/api/v1/quality/nonconformances/?status=open").json()
    (nc,) = open_["results"]
    assert nc["status"] == "open" and nc["reaction"] == "hold_operation"
    assert nc["work_order"] == quality_order.number and nc["values"] == ["8.5"]
    assert erp.get("/api/v1/quality/nonconformances/?status=closed").json()["results"] == []
    bad = erp.get("/api/v1/quality/nonconformances/?status=maybe")
    assert bad.status_code == 400 and set(bad.json()) == {"code", "detail", "errors"}


def test_quality_endpoints_need_a_token(anon_client):
    for url in ("/api/v1/quality/results/", "/api/v1/quality/nonconformances/"):
        response = anon_client.get(url)
        assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def routing_body(wc, product, checks=None):
    step = {"sequence": 10, "name": "Cut", "work_center": wc.code}
    if checks is not None:
        step["checks"] = checks
    return {"product": product.code, "active": True, "steps": [step]}


HOLE = {
    "code": "HOLE-D",
    "name": "Hole diameter",
    "kind": "variable",
    "nominal": 8.0,
    "lower_limit": 7.95,
    "upper_limit": 8.05,
    "unit": "mm",
    "every_n": 50,
}


def test_routing_checks_round_trip_and_survive_omission(integrator):
    wc, product = WorkCenterFactory(), ProductFactory()
    url = "/api/v1/routings/RT-Q/"
    created = integrator.put(url, routing_body(wc, product, [HOLE]), format="json")
    assert created.status_code == 201, created.json()
    (check,) = created.json()["steps"][0]["checks"]
    assert check["lower_limit"] == 7.95 and check["every_n"] == 50 and check["mandatory"] is True
    # Same body again: unchanged.
    again = integrator.put(url, routing_body(wc, product, [HOLE]), format="json")
    assert again.status_code == 200
    # A PUT that leaves `checks` out keeps the plan, even when the step changes.
    body = routing_body(wc, product)
    body["steps"][0]["name"] = "Laser cut"
    renamed = integrator.put(url, body, format="json").json()
    assert renamed["steps"][0]["name"] == "Laser cut"
    assert [c["code"] for c in renamed["steps"][0]["checks"]] == ["HOLE-D"]
    # An explicit [] removes it.
    cleared = integrator.put(url, routing_body(wc, product, []), format="json").json()
    assert cleared["steps"][0]["checks"] == []
    assert not InspectionCharacteristic.objects.exists()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"lower_limit": 9}, "steps.0.checks.0.lower_limit"),
        ({"lower_limit": None, "upper_limit": None}, "steps.0.checks.0.upper_limit"),
        ({"first_piece": False, "every_n": None}, "steps.0.checks.0.first_piece"),
        ({"kind": "attribute"}, "steps.0.checks.0.kind"),
        ({"reaction": "explode"}, "steps"),
    ],
)
def test_invalid_plans_are_refused(integrator, change, field):
    wc, product = WorkCenterFactory(), ProductFactory()
    response = integrator.put(
        "/api/v1/routings/RT-BAD/", routing_body(wc, product, [{**HOLE, **change}]), format="json"
    )
    assert response.status_code == 400, response.json()
    assert any(key.startswith(field) for key in response.json()["errors"]), response.json()
    assert not InspectionCharacteristic.objects.exists()


def test_confirmations_carry_scrap_reasons(erp, quality_order, operator):
    op = started(quality_order, operator)
    services.report_quantity(op, actor=operator, good=3, scrap=2, scrap_reason="DIM")
    (row,) = erp.get("/api/v1/confirmations/?after=0").json()["results"][-1:]
    assert row["scrap_reasons"] == [{"code": "DIM", "quantity": 2}]


def test_the_schema_describes_the_quality_api(erp):
    schema = erp.get("/api/v1/schema/?format=json").json()
    assert "/api/v1/quality/results/" in schema["paths"]
    assert "/api/v1/quality/nonconformances/" in schema["paths"]
    confirmation = schema["components"]["schemas"]["Confirmation"]
    assert "scrap_reasons" in confirmation["properties"]
    step = schema["components"]["schemas"]["RoutingStep"]
    assert "checks" in step["properties"]
