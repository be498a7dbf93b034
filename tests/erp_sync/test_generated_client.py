"""An ERP integration team's way in: a Python client generated from the live schema by
openapi-python-client, with no hand edits, runs an ERP scenario against a live server. A
schema change that breaks generated clients fails here."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from erp_sync.auth import create_api_client
from mes import services
from mes.models import Machine, WorkOrder
from mes.quality import services as quality
from shopfloor.downtime import declare_machine_down
from shopfloor.models import MachineConnection

from .test_machines import CONNECTION

PACKAGE = "mes_api_client"  # from the schema's title, "MES API"


def generate(schema_url: str, target: Path, token: str) -> Path:
    """Generate the client into ``target`` and return the directory to import it from (the
    schema is read with an API client's token, as an integrator would)."""
    schema = target / "schema.json"
    request = urllib.request.Request(
        schema_url + "?format=json", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        schema.write_bytes(response.read())
    bin_dir = Path(sys.executable).parent  # the generator formats its output with ruff
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(schema),
            "--meta",
            "none",
            "--output-path",
            str(target / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=target,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The generator skips what it cannot type and says so: a schema it only half
    # understands is a schema that breaks clients.
    assert "Warning" not in output, output
    return target


@pytest.fixture
def client_package(live_server, tmp_path, transactional_db):
    _, token = create_api_client(name="schema-reader", scope="erp")
    sys.path.insert(0, str(generate(f"{live_server.url}/api/v1/schema/", tmp_path, token)))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.mark.django_db(transaction=True)
def test_a_generated_client_runs_the_erp_scenario(client_package, live_server, operator):
    from mes_api_client import AuthenticatedClient
    from mes_api_client.api.areas import areas_put
    from mes_api_client.api.confirmations import confirmations_list
    from mes_api_client.api.downtimes import downtimes_list
    from mes_api_client.api.machines import machines_list, machines_put, machines_retrieve
    from mes_api_client.api.oee import oee_list
    from mes_api_client.api.products import products_put
    from mes_api_client.api.quality import quality_nonconformances_list, quality_results_list
    from mes_api_client.api.routings import routings_put
    from mes_api_client.api.sites import sites_put
    from mes_api_client.api.work_centers import work_centers_put
    from mes_api_client.api.work_orders import (
        work_orders_hold,
        work_orders_list,
        work_orders_put,
        work_orders_release,
        work_orders_retrieve,
    )
    from mes_api_client.models import (
        AreaRequest,
        CheckKindEnum,
        CheckRequest,
        ConnectionRequest,
        Error,
        ErrorCodeEnum,
        MachinePutRequest,
        NonconformanceStatusEnum,
        OeeListLevel,
        PriorityEnum,
        ProductRequest,
        ReactionEnum,
        ReasonRequest,
        ReleaseRequest,
        RoutingRequest,
        RoutingStepRequest,
        SiteRequest,
        VerdictEnum,
        WorkCenterRequest,
        WorkOrderPutRequest,
        WorkOrderStatusEnum,
    )

    _, integrator_token = create_api_client(name="generated-integrator", scope="integrator")
    _, erp_token = create_api_client(name="generated-erp", scope="erp")
    integrator = AuthenticatedClient(base_url=live_server.url, token=integrator_token)
    erp = AuthenticatedClient(base_url=live_server.url, token=erp_token)

    # Master data and a machine with its PLC connection.
    for put, code, body in [
        (sites_put, "S1", SiteRequest(name="Plant", time_zone="Europe/Berlin")),
        (areas_put, "A1", AreaRequest(name="Hall A", site="S1")),
        (work_centers_put, "WC1", WorkCenterRequest(name="Presses", area="A1")),
        (products_put, "P1", ProductRequest(name="Bracket", unit="pcs")),
    ]:
        assert put.sync_detailed(code, client=integrator, body=body).status_code == 201
    check = CheckRequest(
        code="LEN",
        name="Length",
        kind=CheckKindEnum.VARIABLE,
        nominal=10.0,
        lower_limit=9.9,
        upper_limit=10.1,
        unit="mm",
        first_piece=True,
        reaction=ReactionEnum.WARN,
    )
    step = RoutingStepRequest(
        sequence=10, name="Press", work_center="WC1", cycle_seconds=2.5, checks=[check]
    )
    routing = routings_put.sync(
        "R1", client=integrator, body=RoutingRequest(product="P1", steps=[step])
    )
    assert routing.steps[0].cycle_seconds == 2.5
    created = machines_put.sync(
        "M1",
        client=integrator,
        body=MachinePutRequest(
            name="Press 1", work_center="WC1", connection=ConnectionRequest.from_dict(CONNECTION)
        ),
    )
    assert created.connection.host == "127.0.0.1"
    assert created.connection.registers.good_count.words == 2

    # Work orders: create, list, conditional GET, PUT with If-Match, stale If-Match.
    due = timezone.now() + timedelta(days=3)
    body = WorkOrderPutRequest(
        product="P1", quantity=10.0, due_date=due, priority=PriorityEnum.RUSH
    )
    response = work_orders_put.sync_detailed("WO-1", client=erp, body=body)
    assert response.status_code == 201
    order, etag = response.parsed, response.headers["ETag"]
    assert order.status == WorkOrderStatusEnum.RELEASED and order.quantity == 10.0
    page = work_orders_list.sync(client=erp, page_size=50)
    assert [row.number for row in page.results] == ["WO-1"] and page.next_ is None
    feed = work_orders_list.sync(client=erp, updated_since=due - timedelta(days=30))
    assert [row.number for row in feed.results] == ["WO-1"]
    unchanged = work_orders_retrieve.sync_detailed("WO-1", client=erp, if_none_match=etag)
    assert unchanged.status_code == 304 and unchanged.headers["ETag"] == etag
    body.quantity = 12.0
    updated = work_orders_put.sync_detailed("WO-1", client=erp, body=body, if_match=etag)
    assert updated.status_code == 200 and updated.parsed.quantity == 12.0
    stale = work_orders_put.sync_detailed("WO-1", client=erp, body=body, if_match=etag)
    assert stale.status_code == 412
    assert (
        isinstance(stale.parsed, Error) and stale.parsed.code == ErrorCodeEnum.PRECONDITION_FAILED
    )
    # An error code this client was generated before still parses (as a plain string).
    assert Error.from_dict({"code": "brand_new", "detail": "x", "errors": {}}).code == "brand_new"

    # A transition and back.
    held = work_orders_hold.sync("WO-1", client=erp, body=ReasonRequest(reason="Material late"))
    assert held.status == WorkOrderStatusEnum.ON_HOLD
    released = work_orders_release.sync("WO-1", client=erp, body=ReleaseRequest())
    assert released.status == WorkOrderStatusEnum.RELEASED

    # The floor reports; the ERP reads the confirmations feed and the other feeds.
    wo = WorkOrder.objects.get(number="WO-1")
    op = services.start_operation(wo.operations.get(), operator=operator)
    services.report_quantity(op, actor=operator, good=3)
    quality.record_result(op, check=op.checks.get(), values=["10.4"], actor=operator)
    declare_machine_down(Machine.objects.get(code="M1"), actor=operator, kind="down", note="Jam")
    confirmations = confirmations_list.sync(client=erp, after=0)
    assert [c.quantity_good for c in confirmations.results] == [3.0]
    assert confirmations.last_seq == confirmations.results[-1].seq
    assert work_orders_retrieve.sync("WO-1", client=erp).quantity_good == 3.0
    (result,) = quality_results_list.sync(client=erp).results
    assert result.verdict == VerdictEnum.FAIL and result.values == ["10.4"]
    (nonconformance,) = quality_nonconformances_list.sync(client=erp).results
    assert nonconformance.status == NonconformanceStatusEnum.OPEN
    assert nonconformance.disposition is None and nonconformance.upper_limit == 10.1
    (stop,) = downtimes_list.sync(client=erp, after=due - timedelta(days=30)).results
    assert stop.machine == "M1" and stop.ended_at is None
    start = timezone.now() - timedelta(hours=1)
    assert oee_list.sync(client=erp, level=OeeListLevel.MACHINE, start=start).results

    # A machine renamed by a client that leaves the optional connection out keeps it.
    machine = machines_retrieve.sync("M1", client=erp)
    connection = MachineConnection.objects.get(machine__code="M1")
    renamed = machines_put.sync(
        "M1",
        client=integrator,
        body=MachinePutRequest(name="Press 1 (hall B)", work_center=machine.work_center),
    )
    assert renamed.name == "Press 1 (hall B)" and renamed.connection is not None
    assert MachineConnection.objects.get(machine__code="M1").updated_at == connection.updated_at
    # What GET returned goes back unchanged; an explicit null removes the connection.
    again = machines_put.sync(
        "M1",
        client=integrator,
        body=MachinePutRequest(
            name=renamed.name,
            work_center=renamed.work_center,
            connection=ConnectionRequest.from_dict(machine.connection.to_dict()),
        ),
    )
    assert again.connection.to_dict() == machine.connection.to_dict()
    assert MachineConnection.objects.get(machine__code="M1").updated_at == connection.updated_at
    removed = machines_put.sync(
        "M1",
        client=integrator,
        body=MachinePutRequest(name=renamed.name, work_center="WC1", connection=None),
    )
    assert removed.connection is None and removed.plc is None
    assert [m.code for m in machines_list.sync(client=erp).results] == ["M1"]
