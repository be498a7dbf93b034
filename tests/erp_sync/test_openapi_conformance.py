"""The published OpenAPI 3.1 document against reality, with a strict validator: an ERP
scenario calls every operation and every real response (status, body, documented headers)
must validate; every event the outbox writes, and every delivery's headers, must validate
against the document's ``webhooks``."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from erp_sync import services as erp_services
from erp_sync.delivery import deliver_pending
from erp_sync.models import EventType, OutboxEvent
from mes import services
from mes.models import Machine, RoutingStep, WorkOrder
from mes.quality import services as quality
from mes.scheduling.services import replan
from shopfloor.downtime import declare_machine_down
from tests.factories import make_routing, make_work_order
from tests.quality.conftest import add_check

from .openapi import Contract
from .test_machines import CONNECTION

pytestmark = pytest.mark.django_db

API = "/api/v1"
SECRET = "conformance-secret-0123456789"


@pytest.fixture
def contract(schema_client) -> Contract:
    response = schema_client.get(f"{API}/schema/", {"format": "json"})
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    return Contract(document)


class Caller:
    """An API client whose every answer is checked against the contract."""

    def __init__(self, client: APIClient, contract: Contract) -> None:
        self.client, self.contract = client, contract

    def __call__(self, method: str, path: str, body=None, *, expect: int, **headers):
        call = getattr(self.client, method.lower())
        kwargs = {"format": "json"} if body is not None else {}
        response = (
            call(path, body, **kwargs, **headers) if body is not None else call(path, **headers)
        )
        assert response.status_code == expect, (method, path, response.content[:500])
        self.contract.check_response(method, path, response)
        return response


def test_every_operation_answers_as_the_schema_says(
    contract, erp_client, integrator_client, anon_client, supervisor, operator
):
    erp = Caller(erp_client, contract)
    integrator = Caller(integrator_client, contract)
    anon = Caller(anon_client, contract)

    # Master data, as an integrator sets up a plant.
    integrator(
        "PUT", f"{API}/sites/S1/", {"name": "Plant", "time_zone": "Europe/Berlin"}, expect=201
    )
    integrator("PUT", f"{API}/areas/A1/", {"name": "Hall A", "site": "S1"}, expect=201)
    integrator("PUT", f"{API}/work-centers/WC1/", {"name": "Presses", "area": "A1"}, expect=201)
    integrator("PUT", f"{API}/products/P1/", {"name": "Bracket", "unit": "pcs"}, expect=201)
    step = {
        "sequence": 10,
        "name": "Press",
        "work_center": "WC1",
        "cycle_seconds": 2.5,
        "checks": [
            {
                "code": "LEN",
                "name": "Length",
                "kind": "variable",
                "nominal": 10,
                "lower_limit": 9.9,
                "upper_limit": 10.1,
                "unit": "mm",
            }
        ],
    }
    routing = {"product": "P1", "steps": [step]}
    integrator("PUT", f"{API}/routings/R1/", routing, expect=201)
    integrator("PUT", f"{API}/routings/R1/", routing, expect=200)
    machine = {"name": "Press 1", "work_center": "WC1", "connection": CONNECTION}
    integrator("PUT", f"{API}/machines/M1/", machine, expect=201)
    integrator("PUT", f"{API}/machines/M1/", {"name": "Press 1b", "work_center": "WC1"}, expect=200)
    integrator("PUT", f"{API}/machines/M2/", {"name": "Bare", "work_center": "WC1"}, expect=201)
    # What the admin accepts may lie beyond an API limit; responses still validate.
    RoutingStep.objects.filter(routing__code="R1").update(
        setup_seconds=2_100_000_000, instructions="x" * 25_000
    )
    for kind, code in [
        ("sites", "S1"),
        ("areas", "A1"),
        ("work-centers", "WC1"),
        ("products", "P1"),
        ("routings", "R1"),
        ("machines", "M1"),
        ("machines", "M2"),
    ]:
        erp("GET", f"{API}/{kind}/", expect=200)
        erp("GET", f"{API}/{kind}/{code}/", expect=200)
    endpoint = {
        "url": "http://127.0.0.1:9/e",
        "secret": SECRET,
        "event_types": ["schedule.changed"],
    }
    integrator("PUT", f"{API}/erp-endpoints/E1/", endpoint, expect=201)
    integrator("GET", f"{API}/erp-endpoints/", expect=200)
    integrator("GET", f"{API}/erp-endpoints/E1/", expect=200)
    integrator("DELETE", f"{API}/erp-endpoints/E1/", expect=204)

    # Work orders, as an ERP pushes and reads them.
    due = (timezone.now() + timedelta(days=3)).isoformat()
    order = {"product": "P1", "quantity": 12.5, "due_date": due, "priority": "rush"}
    created = erp("PUT", f"{API}/work-orders/WO-1/", order, expect=201)
    erp("PUT", f"{API}/work-orders/WO-1/", order, expect=200)
    erp("PUT", f"{API}/work-orders/WO-2/", {**order, "release": False}, expect=201)
    erp("GET", f"{API}/work-orders/", expect=200)
    erp("GET", f"{API}/work-orders/?updated_since=2000-01-01T00:00:00Z&page_size=1", expect=200)
    etag = created["ETag"]
    erp("GET", f"{API}/work-orders/WO-1/", expect=200)
    erp("GET", f"{API}/work-orders/WO-1/", expect=304, HTTP_IF_NONE_MATCH=etag)
    erp("PUT", f"{API}/work-orders/WO-1/", order, expect=412, HTTP_IF_MATCH='"wo-0-v0"')
    erp("POST", f"{API}/work-orders/WO-1/hold/", {"reason": "Material late"}, expect=200)
    erp("POST", f"{API}/work-orders/WO-1/release/", {}, expect=200)
    erp("POST", f"{API}/work-orders/WO-2/cancel/", {"reason": "Not needed"}, expect=200)
    erp("POST", f"{API}/work-orders/WO-2/hold/", {"reason": "?"}, expect=409)

    # The floor works: a confirmation, a failed measurement, a stop.
    wo = WorkOrder.objects.get(number="WO-1")
    press = Machine.objects.get(code="M1")
    op = services.start_operation(wo.operations.get(), operator=operator, machine=press)
    quality.record_result(op, check=op.checks.get(), values=["10.5"], actor=operator)
    services.report_quantity(op, actor=operator, good=3)
    declare_machine_down(press, actor=supervisor, kind="down", note="Jam")
    erp("GET", f"{API}/confirmations/?after=0", expect=200)
    erp("GET", f"{API}/quality/results/?after=0", expect=200)
    erp("GET", f"{API}/quality/nonconformances/", expect=200)
    stops = erp("GET", f"{API}/downtimes/?after=2000-01-01T00:00:00Z", expect=200)
    assert [row["machine"] for row in stops.json()["results"]] == ["M1"]
    assert erp("GET", f"{API}/quality/nonconformances/", expect=200).json()["results"]
    start = (timezone.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for level in ("machine", "work_center", "area", "site"):
        erp("GET", f"{API}/oee/?level={level}&start={start}", expect=200)
    erp("GET", f"{API}/machines/M1/", expect=200)  # running operation, plc block

    # Errors: each in the contract's shape, each status documented where it happens.
    erp("PUT", f"{API}/work-orders/WO-3/", {**order, "quantity": -1}, expect=400)
    erp("PUT", f"{API}/work-orders/WO-3/", {**order, "product": "NOPE"}, expect=400)
    anon("GET", f"{API}/work-orders/", expect=401)
    erp("PUT", f"{API}/machines/M3/", {"name": "X", "work_center": "WC1"}, expect=403)
    erp("GET", f"{API}/work-orders/NOPE/", expect=404)
    erp("GET", f"{API}/machines/NOPE/", expect=404)
    erp("POST", f"{API}/work-orders/", {}, expect=405)
    erp("GET", f"{API}/work-orders/WO-1/", expect=406, HTTP_ACCEPT="text/html")
    response = erp_client.put(f"{API}/work-orders/WO-3/", "quantity=1", content_type="text/plain")
    assert response.status_code == 415
    contract.check_response("PUT", f"{API}/work-orders/WO-3/", response)

    # Every operation of the document answered successfully at least once.
    operations = {
        (method, path)
        for path, item in contract.document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete"}
    }
    succeeded = {(m, p) for m, p, status in contract.checked if 200 <= status < 300}
    assert operations - succeeded == set(), "operations the scenario does not cover"


class Receiver:
    """An ERP's webhook receiver on loopback that keeps each request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/erp/events"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_every_event_and_its_delivery_validate_against_the_webhooks(
    contract, receiver, supervisor, operator, settings
):
    settings.MES_OUTBOX_TIMEOUT = 2
    erp_services.upsert_endpoint(
        "erp", url=receiver.url, secret=SECRET, event_types=list(EventType.values), active=True
    )
    routing = make_routing(2)
    add_check(routing.steps.order_by("sequence").first())
    wo = make_work_order(actor=supervisor, routing=routing, number="WO-EV")
    replan(reason="conformance")
    op = services.start_operation(wo.operations.order_by("sequence").first(), operator=operator)
    quality.record_result(op, check=op.checks.get(), values=["9.0"], actor=operator)
    services.report_quantity(op, actor=operator, good=5, scrap=1)
    services.hold_work_order(wo, actor=supervisor, reason="Check the tool")
    replan(reason="conformance")

    events = list(OutboxEvent.objects.order_by("id"))
    assert {e.event_type for e in events} == set(EventType.values), "not every type occurred"
    for event in events:
        contract.check_event(event.envelope())

    deliver_pending()
    assert len(receiver.requests) == len(events)
    for headers, body in receiver.requests:
        envelope = json.loads(body)
        contract.check_event(envelope, headers)
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-MES-Signature"], signature)
        assert headers["Idempotency-Key"] == envelope["id"]
        assert headers["X-MES-Event-Type"] == envelope["type"]


def test_a_response_missing_a_required_key_would_fail(contract):
    """The checker is not a rubber stamp: a representation without a key, with a wrong type
    or with a bad date fails."""
    body = {"code": "invalid", "detail": "x", "errors": {}}
    assert contract.errors(body, "/components/schemas/Error") == []
    assert contract.errors({"code": "invalid", "detail": "x"}, "/components/schemas/Error")
    assert contract.errors({**body, "code": 7}, "/components/schemas/Error")
    event = {
        "id": "not-a-uuid",
        "type": "schedule.changed",
        "occurred_at": "2026-02-30T00:00:00Z",
        "data": {},
    }
    problems = contract.errors(event, "/components/schemas/ScheduleChangedEvent")
    assert any(p.startswith("id") for p in problems), problems
    assert any(p.startswith("occurred_at") for p in problems), problems
    assert any(p.startswith("(root)") or p.startswith("data") for p in problems), problems
