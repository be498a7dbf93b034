"""Every write endpoint against bodies no client should send: nested 100,000 levels deep,
a NUL character in a string or a key, NaN, Infinity or 1e999999999 for a value, a field
the endpoint does not know (at the top and inside nested objects), a body over the size
limit. Each is a 4xx with the contract's error body, naming the field where there is one,
and changes nothing; the same body without the hostile part is accepted."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from erp_sync.models import ErpEndpoint
from mes import services
from mes.models import Area, Machine, Product, Routing, RoutingStep, Site, WorkCenter, WorkOrder
from shopfloor.models import MachineConnection
from tests.factories import (
    AreaFactory,
    ProductFactory,
    SiteFactory,
    WorkCenterFactory,
    make_work_order,
)
from tests.mes.marks import last_ids

from .helpers import API, assert_error, due, iso
from .openapi import Contract
from .test_machines import CONNECTION

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Write:
    method: str
    path: str
    body: Callable[[dict], dict]  # a valid body, from the plant's codes

    def call(self, client, body: Any = None, *, raw: str | None = None):
        send = getattr(client, self.method)
        if raw is not None:
            return send(API + self.path, raw, content_type="application/json")
        return send(API + self.path, body, format="json")


STEP = {
    "sequence": 10,
    "name": "Cut",
    "work_center": "WC1",
    "setup_seconds": 30,
    "cycle_seconds": 2.5,
    "checks": [{"code": "LEN", "name": "Length", "kind": "variable", "upper_limit": 10.5}],
}
WRITES = {
    "work-order": Write(
        "put",
        "/work-orders/WO-NEW/",
        lambda plant: {
            "product": plant["product"],
            "quantity": 5,
            "due_date": iso(due()),
            "priority": "rush",
            "release": False,
            "notes": "From the ERP",
        },
    ),
    "hold": Write("post", "/work-orders/WO-RUN/hold/", lambda plant: {"reason": "Material"}),
    "release": Write("post", "/work-orders/WO-HELD/release/", lambda plant: {"reason": "Back"}),
    "cancel": Write("post", "/work-orders/WO-RUN/cancel/", lambda plant: {"reason": "Obsolete"}),
    "site": Write("put", "/sites/S2/", lambda plant: {"name": "Plant 2", "time_zone": "UTC"}),
    "area": Write("put", "/areas/A2/", lambda plant: {"name": "Hall 2", "site": "S1"}),
    "work-center": Write("put", "/work-centers/WC2/", lambda plant: {"name": "Saw", "area": "A1"}),
    "product": Write("put", "/products/P2/", lambda plant: {"name": "Bolt", "unit": "pcs"}),
    "routing": Write(
        "put", "/routings/R2/", lambda plant: {"product": "P1", "active": True, "steps": [STEP]}
    ),
    "machine": Write(
        "put",
        "/machines/M2/",
        lambda plant: {"name": "Press 2", "work_center": "WC1", "connection": CONNECTION},
    ),
    "erp-endpoint": Write(
        "put",
        "/erp-endpoints/E2/",
        lambda plant: {
            "url": "http://127.0.0.1:9/erp",
            "secret": "s" * 20,
            "event_types": ["work_order.updated"],
            "active": True,
        },
    ),
}
# Nested objects and where an unknown field inside them is named.
NESTED_TYPOS = {
    "routing": [("steps", 0, "typo"), ("steps", 0, "checks", 0, "typo")],
    "machine": [("connection", "typo"), ("connection", "registers", "state", "typo")],
}


@pytest.fixture
def plant(supervisor, settings) -> dict:
    """What the bodies refer to, and two orders to act on."""
    settings.MES_PLC_GROUPS = ["default"]
    area = AreaFactory(code="A1", site=SiteFactory(code="S1"))
    WorkCenterFactory(code="WC1", area=area)
    ProductFactory(code="P1")
    running = make_work_order(actor=supervisor, number="WO-RUN")
    held = make_work_order(actor=supervisor, number="WO-HELD")
    services.hold_work_order(held, actor=supervisor, reason="Waiting")
    return {"product": running.product.code}


def snapshot() -> tuple:
    """What a write could change: rows of every kind, the audit trail, the outbox, and the
    orders' statuses and versions."""
    kinds = (Site, Area, WorkCenter, Product, Routing, RoutingStep, Machine, MachineConnection)
    return (
        last_ids(),
        [model.objects.count() for model in (*kinds, ErpEndpoint, WorkOrder)],
        list(WorkOrder.objects.order_by("number").values_list("number", "status", "version")),
    )


def leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def replaced(body: dict, path: tuple, new: Any) -> dict:
    body = copy.deepcopy(body)
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return body


def dotted(path: tuple) -> str:
    return ".".join(map(str, path))


PLACEHOLDER = "\u2603placeholder"


def raw_with(body: dict, path: tuple, json_text: str) -> str:
    """The body as JSON text with ``json_text`` (not necessarily JSON) at ``path``."""
    return json.dumps(replaced(body, path, PLACEHOLDER)).replace(json.dumps(PLACEHOLDER), json_text)


def refused(response, before, status: int = 400, code: str = "invalid", field=None) -> dict:
    body = assert_error(response, status, code, {field} if field else None)
    assert snapshot() == before, "a refused request changed something"
    return body


def accepted_afterwards(client, write: Write, plant: dict) -> None:
    """The body without the hostile part goes through: the refusals were about that part."""
    response = write.call(client, write.body(plant))
    assert response.status_code in (200, 201), response.content[:500]


ENDPOINTS = pytest.mark.parametrize("name", list(WRITES))


@ENDPOINTS
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_deeply_is_400(integrator_client, plant, name, depth):
    write, before = WRITES[name], snapshot()
    body = write.body(plant)
    deep = "[" * depth + "]" * depth

    response = write.call(integrator_client, raw=raw_with(body, (next(iter(body)),), deep))

    refused(response, before)
    accepted_afterwards(integrator_client, write, plant)


@ENDPOINTS
def test_a_nul_character_in_any_string_or_key_is_400_naming_it(integrator_client, plant, name):
    write, before = WRITES[name], snapshot()
    body = write.body(plant)
    strings = [(path, value) for path, value in leaves(body) if isinstance(value, str)]
    assert strings

    for path, value in strings:
        response = write.call(integrator_client, replaced(body, path, value + "\x00"))
        refused(response, before, field=dotted(path))
    first = next(iter(body))
    with_key = {**body, first + "\x00": body[first]}
    refused(write.call(integrator_client, with_key), before, field=first + "\x00")
    accepted_afterwards(integrator_client, write, plant)


@ENDPOINTS
def test_nan_infinity_and_huge_exponents_are_400_naming_the_field(integrator_client, plant, name):
    write, before = WRITES[name], snapshot()
    body = write.body(plant)

    for path, _value in leaves(body):
        for number in ("NaN", "Infinity", "-Infinity", "1e999999999"):
            response = write.call(integrator_client, raw=raw_with(body, path, number))
            refused(response, before, field=dotted(path))
    accepted_afterwards(integrator_client, write, plant)


@ENDPOINTS
def test_an_unknown_field_is_400_naming_it(integrator_client, plant, name):
    write, before = WRITES[name], snapshot()
    body = write.body(plant)

    response = write.call(integrator_client, {**body, "relase": False})
    errors = refused(response, before, field="relase")["errors"]
    assert errors["relase"][0].startswith("Unknown field"), errors
    for path in NESTED_TYPOS.get(name, []):
        response = write.call(integrator_client, replaced(body, path, 1))
        refused(response, before, field=dotted(path))
    accepted_afterwards(integrator_client, write, plant)


@ENDPOINTS
def test_a_body_over_the_size_limit_is_413(integrator_client, schema_client, plant, settings, name):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    contract = Contract(schema_client.get(f"{API}/schema/", {"format": "json"}).json())
    write, before = WRITES[name], snapshot()
    body = write.body(plant)
    path, value = next((p, v) for p, v in leaves(body) if isinstance(v, str))

    response = write.call(integrator_client, replaced(body, path, value + "x" * 5000))

    detail = refused(response, before, 413, "payload_too_large")["detail"]
    assert "4096 bytes" in detail
    contract.check_response(write.method, API + write.path, response)  # 413 is documented
    accepted_afterwards(integrator_client, write, plant)


# --- What GET returned goes back; a typo beside it does not -------------------------------

ROUND_TRIPS = {
    "work-order": "/work-orders/WO-RUN/",
    "machine": "/machines/M1/",
    "routing": "/routings/R1/",
    "site": "/sites/S1/",
    "area": "/areas/A1/",
    "work-center": "/work-centers/WC1/",
    "product": "/products/P1/",
    "erp-endpoint": "/erp-endpoints/E1/",
}


@pytest.mark.parametrize("kind", list(ROUND_TRIPS))
def test_what_get_returned_can_be_put_back_unchanged_but_not_with_a_typo(
    integrator_client, plant, kind
):
    url = API + ROUND_TRIPS[kind]
    if kind in ("machine", "routing", "erp-endpoint"):  # made through the API first
        created = integrator_client.put(url, WRITES[kind].body(plant), format="json")
        assert created.status_code == 201, created.content[:500]
    got = integrator_client.get(url).json()
    before = snapshot()

    sent_back = integrator_client.put(url, got, format="json")
    misspelt = integrator_client.put(url, {**got, "relase": False}, format="json")

    assert sent_back.status_code == 200, sent_back.content[:500]
    assert snapshot() == before, "sending back what GET returned changed something"
    refused(misspelt, before, field="relase")
