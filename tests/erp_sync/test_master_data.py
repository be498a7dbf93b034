"""Master data: sites, areas, work centers, products and routings. GET list and one with
both scopes; idempotent PUT by code with ``integrator`` only."""

from __future__ import annotations

import pytest

from mes.models import Area, Product, Routing, RoutingStep, Site, WorkCenter
from tests.factories import (
    AreaFactory,
    ProductFactory,
    SiteFactory,
    WorkCenterFactory,
    make_routing,
    make_work_order,
)

from .helpers import API, assert_error, walk

pytestmark = pytest.mark.django_db


def url(kind: str, code: str | None = None) -> str:
    return f"{API}/{kind}/" + (f"{code}/" if code else "")


def put(client, kind: str, code: str, body: dict):
    return client.put(url(kind, code), body, format="json")


@pytest.fixture
def refs():
    """What the bodies below refer to."""
    site = SiteFactory(code="PLANT-1")
    area = AreaFactory(code="PRESSING", site=site)
    WorkCenterFactory(code="PRESS-1", area=area)
    WorkCenterFactory(code="PRESS-2", area=area)
    ProductFactory(code="BRKT-01")


STEPS = [
    {
        "sequence": 10,
        "name": "Cut",
        "work_center": "PRESS-1",
        "setup_seconds": 300,
        "cycle_seconds": 12.5,
    },
    {
        "sequence": 20,
        "name": "Bend",
        "work_center": "PRESS-2",
        "setup_seconds": 0,
        "cycle_seconds": 4,
    },
]

# kind, model, code, body, an update of the body
KINDS = [
    (
        "sites",
        Site,
        "PLANT-2",
        {"name": "Plant two", "time_zone": "Europe/Berlin"},
        {"time_zone": "America/Chicago"},
    ),
    ("areas", Area, "WELDING", {"name": "Welding", "site": "PLANT-1"}, {"name": "Welding hall"}),
    (
        "work-centers",
        WorkCenter,
        "WELD-1",
        {"name": "Welder 1", "area": "PRESSING"},
        {"name": "Robot welder"},
    ),
    ("products", Product, "BRKT-02", {"name": "Bracket 2", "unit": "pcs"}, {"unit": "kg"}),
    (
        "routings",
        Routing,
        "BRKT-01-A",
        {"product": "BRKT-01", "active": True, "steps": STEPS},
        {"steps": STEPS[:1]},
    ),
]
KIND_IDS = [kind[0] for kind in KINDS]


def matches(body: dict, sent: dict) -> bool:
    return all(body[key] == value for key, value in sent.items() if key != "steps")


def steps_of(body: dict) -> list[dict]:
    keys = ("sequence", "name", "work_center", "setup_seconds", "cycle_seconds")
    return [{k: step[k] for k in keys} for step in body["steps"]]


@pytest.mark.parametrize("kind,model,code,body,update", KINDS, ids=KIND_IDS)
def test_put_creates_then_the_same_body_is_200_and_unchanged(
    integrator_client, refs, kind, model, code, body, update
):
    created = put(integrator_client, kind, code, body)
    assert created.status_code == 201, created.content
    assert created.json()["code"] == code
    assert matches(created.json(), body)
    if kind == "routings":
        assert steps_of(created.json()) == STEPS
    count = model.objects.count()

    again = put(integrator_client, kind, code, body)

    assert again.status_code == 200
    assert again.json() == created.json()
    assert model.objects.count() == count
    assert model.objects.filter(code=code).count() == 1


@pytest.mark.parametrize("kind,model,code,body,update", KINDS, ids=KIND_IDS)
def test_put_updates(integrator_client, refs, kind, model, code, body, update):
    put(integrator_client, kind, code, body)

    response = put(integrator_client, kind, code, {**body, **update})

    assert response.status_code == 200, response.content
    assert matches(response.json(), {**body, **update})
    if kind == "routings":
        assert steps_of(response.json()) == update["steps"]
        assert RoutingStep.objects.filter(routing__code=code).count() == 1
    else:
        field, value = next(iter(update.items()))
        assert getattr(model.objects.get(code=code), field) == value


@pytest.mark.parametrize("kind,model,code,body,update", KINDS, ids=KIND_IDS)
def test_get_one_and_list_with_the_erp_scope(
    erp_client, integrator_client, refs, kind, model, code, body, update
):
    created = put(integrator_client, kind, code, body).json()

    one = erp_client.get(url(kind, code))
    assert one.status_code == 200
    assert one.json() == created

    rows = walk(erp_client, url(kind) + "?page_size=1")
    codes = [row["code"] for row in rows]
    assert codes == sorted(model.objects.values_list("code", flat=True))
    assert created in rows


@pytest.mark.parametrize("kind,model,code,body,update", KINDS, ids=KIND_IDS)
def test_the_erp_scope_cannot_put(erp_client, refs, kind, model, code, body, update):
    count = model.objects.count()
    assert_error(put(erp_client, kind, code, body), 403, "permission_denied")
    assert model.objects.count() == count


@pytest.mark.parametrize("kind", KIND_IDS)
def test_anonymous_cannot_read(anon_client, db, kind):
    assert_error(anon_client.get(url(kind)), 401, "not_authenticated")
    assert_error(anon_client.get(url(kind, "X")), 401, "not_authenticated")


@pytest.mark.parametrize("kind", KIND_IDS)
def test_unknown_code_is_404(erp_client, db, kind):
    assert_error(erp_client.get(url(kind, "NO-SUCH")), 404, "not_found")


@pytest.mark.parametrize("kind", KIND_IDS)
def test_lists_are_post_free(integrator_client, db, kind):
    assert_error(integrator_client.post(url(kind), {}, format="json"), 405, "method_not_allowed")


def test_product_representation(erp_client):
    ProductFactory(code="BOLT", name="Bolt M8", unit="pcs")

    response = erp_client.get(url("products", "BOLT"))

    assert response.json() == {"code": "BOLT", "name": "Bolt M8", "unit": "pcs"}


def test_site_area_and_work_center_representations(erp_client, refs):
    assert erp_client.get(url("sites", "PLANT-1")).json() == {
        "code": "PLANT-1",
        "name": Site.objects.get(code="PLANT-1").name,
        "time_zone": "Europe/Berlin",
    }
    assert erp_client.get(url("areas", "PRESSING")).json()["site"] == "PLANT-1"
    assert erp_client.get(url("work-centers", "PRESS-1")).json()["area"] == "PRESSING"


# --- Unknown references and validation --------------------------------------------------------


@pytest.mark.parametrize(
    "kind,body,code,field",
    [
        ("areas", {"name": "A", "site": "NOWHERE"}, "unknown_site", "site"),
        ("work-centers", {"name": "W", "area": "NOWHERE"}, "unknown_area", "area"),
        ("routings", {"product": "NOTHING", "steps": STEPS}, "unknown_product", "product"),
        (
            "routings",
            {
                "product": "BRKT-01",
                "steps": [{**STEPS[0]}, {**STEPS[1], "work_center": "NOWHERE"}],
            },
            "unknown_work_center",
            None,
        ),
    ],
)
def test_an_unknown_reference_is_400_unknown_kind(integrator_client, refs, kind, body, code, field):
    before = (Area.objects.count(), WorkCenter.objects.count(), Routing.objects.count())

    response = put(integrator_client, kind, "NEW-1", body)

    errors = assert_error(response, 400, code)["errors"]
    if field:
        assert field in errors
    else:
        assert any("work_center" in name for name in errors), errors
    assert (Area.objects.count(), WorkCenter.objects.count(), Routing.objects.count()) == before


@pytest.mark.parametrize(
    "kind,body,field",
    [
        ("sites", {"name": "S", "time_zone": "Mars/Olympus"}, "time_zone"),
        ("sites", {"name": "S"}, "time_zone"),
        ("sites", {"time_zone": "UTC"}, "name"),
        ("products", {"name": "P"}, "unit"),
        ("products", {"name": "P", "unit": "x" * 17}, "unit"),
        ("areas", {"name": "A"}, "site"),
        ("routings", {"product": "BRKT-01"}, "steps"),
        ("routings", {"product": "BRKT-01", "steps": [STEPS[0], STEPS[0]]}, "steps"),
        (
            "routings",
            {"product": "BRKT-01", "steps": [{**STEPS[0], "cycle_seconds": -1}]},
            "steps.0.cycle_seconds",
        ),
    ],
)
def test_invalid_bodies_are_400(integrator_client, refs, kind, body, field):
    assert_error(put(integrator_client, kind, "NEW-1", body), 400, "invalid", {field})


def test_an_empty_step_list_is_an_error_of_the_steps_field(integrator_client, refs):
    response = put(integrator_client, "routings", "NEW-1", {"product": "BRKT-01", "steps": []})
    body = assert_error(response, 400, "invalid")
    assert set(body["errors"]) == {"steps"}, body


def test_an_unknown_work_center_is_named_by_its_index_in_the_body(integrator_client, refs):
    steps = [STEPS[1], {**STEPS[0], "work_center": "NOWHERE"}]  # given out of order

    response = put(integrator_client, "routings", "NEW-1", {"product": "BRKT-01", "steps": steps})

    body = assert_error(response, 400, "unknown_work_center")
    assert set(body["errors"]) == {"steps.1.work_center"}, body


@pytest.mark.parametrize("page_size", [0, 501, "x"])
def test_master_data_page_size_is_bounded_like_work_orders(erp_client, db, page_size):
    response = erp_client.get(url("products"), {"page_size": page_size})
    assert_error(response, 400, "invalid", {"page_size"})


@pytest.mark.parametrize("code", ["has space", "x" * 65, "semi;colon", "TRAILING%0A"])
def test_an_invalid_code_in_the_path_is_400(integrator_client, db, code):
    response = put(integrator_client, "products", code, {"name": "P", "unit": "pcs"})
    assert_error(response, 400, "invalid", {"code"})
    assert not Product.objects.exists()


@pytest.mark.parametrize("reference", ["a b", "a/b", "x" * 65, ""])
def test_a_malformed_reference_in_a_body_is_400_invalid_on_its_field(
    integrator_client, db, reference
):
    response = put(integrator_client, "areas", "A1", {"name": "Hall", "site": reference})
    assert_error(response, 400, "invalid", {"site"})
    assert not Area.objects.exists()


# --- Routings ---------------------------------------------------------------------------------


def test_activating_a_routing_deactivates_the_products_other_routing(integrator_client, refs):
    put(integrator_client, "routings", "R-A", {"product": "BRKT-01", "steps": STEPS})
    assert Routing.objects.get(code="R-A").active

    response = put(
        integrator_client, "routings", "R-B", {"product": "BRKT-01", "active": True, "steps": STEPS}
    )

    assert response.status_code == 201
    assert response.json()["active"] is True
    assert integrator_client.get(url("routings", "R-A")).json()["active"] is False
    assert list(Routing.objects.filter(active=True).values_list("code", flat=True)) == ["R-B"]

    back = put(
        integrator_client, "routings", "R-A", {"product": "BRKT-01", "active": True, "steps": STEPS}
    )
    assert back.status_code == 200
    assert back.json()["active"] is True
    assert integrator_client.get(url("routings", "R-B")).json()["active"] is False


def test_an_inactive_routing_leaves_the_active_one_alone(integrator_client, refs):
    put(integrator_client, "routings", "R-A", {"product": "BRKT-01", "steps": STEPS})

    response = put(
        integrator_client,
        "routings",
        "R-B",
        {"product": "BRKT-01", "active": False, "steps": STEPS},
    )

    assert response.status_code == 201
    assert response.json()["active"] is False
    assert Routing.objects.get(code="R-A").active


def test_activation_does_not_touch_other_products_routings(integrator_client, refs):
    other = make_routing(1)
    put(integrator_client, "routings", "R-A", {"product": "BRKT-01", "steps": STEPS})
    other.refresh_from_db()
    assert other.active


def test_changing_a_routings_steps_keeps_released_orders_operations(
    integrator_client, refs, supervisor
):
    put(integrator_client, "routings", "R-A", {"product": "BRKT-01", "steps": STEPS})
    wo = make_work_order(actor=supervisor, routing=Routing.objects.get(code="R-A"))

    response = put(integrator_client, "routings", "R-A", {"product": "BRKT-01", "steps": STEPS[:1]})

    assert response.status_code == 200
    assert wo.operations.count() == 2


def test_moving_a_routing_in_use_to_another_product_is_a_conflict(
    integrator_client, refs, supervisor
):
    put(integrator_client, "routings", "R-USED", {"product": "BRKT-01", "steps": STEPS})
    make_work_order(actor=supervisor, routing=Routing.objects.get(code="R-USED"))
    ProductFactory(code="OTHER")
    before = list(Routing.objects.values_list("code", "product__code", "version", "active"))

    response = put(integrator_client, "routings", "R-USED", {"product": "OTHER", "steps": STEPS})

    assert_error(response, 409, "conflict", {"product"})
    after = list(Routing.objects.values_list("code", "product__code", "version", "active"))
    assert after == before


def test_moving_an_unused_routing_to_another_product(integrator_client, refs):
    put(integrator_client, "routings", "R-FREE", {"product": "BRKT-01", "steps": STEPS})
    ProductFactory(code="OTHER")

    response = put(integrator_client, "routings", "R-FREE", {"product": "OTHER", "steps": STEPS})

    assert response.status_code == 200, response.content
    assert response.json()["product"] == "OTHER"
    assert response.json()["active"] is True  # active: true is the default of the body
