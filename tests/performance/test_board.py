"""The plant board: every machine's tile, in words and symbols, for any signed-in user,
polled as a partial with a query count that does not grow with the machines."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mes import services
from mes.models import Operation
from shopfloor.downtime import declare_machine_down
from shopfloor.plc.services import StateReading, record_machine_states
from tests.factories import MachineFactory, make_routing, make_work_order

pytestmark = pytest.mark.django_db
URL = "/board/"


@pytest.fixture
def running(supervisor, operator):
    routing = make_routing(1)
    wo = make_work_order(actor=supervisor, routing=routing, quantity=200)
    services.update_work_order(wo, actor=supervisor, priority="rush")
    op = Operation.objects.get(work_order=wo)
    machine = routing.steps.get().work_center.machines.get()
    op = services.start_operation(op, operator=operator, machine=machine)
    services.report_quantity(op, actor=operator, good=50)
    return machine, wo


def test_the_board_needs_a_sign_in_and_serves_every_role(client, operator, running):
    assert client.get(URL).status_code == 302
    client.force_login(operator)
    page = client.get(URL)
    assert page.status_code == 200
    assert b'hx-trigger="every 2s"' in page.content


def test_tiles_say_state_job_progress_rush_and_a_waiting_reason(client, supervisor, running):
    machine, wo = running
    record_machine_states(
        [StateReading(machine.pk, machine.code, "down", machine.state_since)]
    )  # the PLC: down with the operation running opens a stop without reason
    client.force_login(supervisor)

    html = client.get(URL, HTTP_HX_REQUEST="true").content.decode()

    assert "<html" not in html  # the partial only
    tile = html[html.index(f'data-machine="{machine.code}"') :]
    tile = tile[: tile.index("</li>")]
    assert 'data-state="down"' in tile and "Down" in tile and "■" in tile
    assert wo.number in tile and "50 / 200" in tile and 'aria-valuenow="25"' in tile
    assert "Rush" in tile and "⚑" in tile
    assert "Reason needed" in tile and "▲" in tile
    assert "1 stop waits for its reason" in html


def test_a_blocked_machine_reads_blocked(client, supervisor, running):
    machine, _ = running
    declare_machine_down(machine, actor=supervisor, kind="blocked", note="No steel")
    client.force_login(supervisor)
    html = client.get(URL, HTTP_HX_REQUEST="true").content.decode()
    tile = html[html.index(f'data-machine="{machine.code}"') :]
    assert 'data-state="blocked"' in tile[:400] and "Blocked" in tile[:600]


def test_the_board_query_count_does_not_grow_with_the_machines(client, supervisor, running):
    machine, _ = running
    client.force_login(supervisor)
    client.get(URL, HTTP_HX_REQUEST="true")

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL, HTTP_HX_REQUEST="true").status_code == 200
        return len(queries)

    before = count()
    for _ in range(10):
        MachineFactory(work_center=machine.work_center)
    assert count() == before
