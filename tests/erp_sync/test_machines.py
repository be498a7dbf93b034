"""GET /api/v1/machines/, GET and PUT /api/v1/machines/{code}/ (with the PLC connection)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from mes import services
from mes.formats import iso_utc
from mes.models import Machine
from shopfloor.models import MachineConnection, PlcStatus
from tests.factories import (
    MachineFactory,
    WorkCenterFactory,
    make_routing,
    make_work_order,
)

from .helpers import API, CURRENT_OPERATION_KEYS, assert_error, walk

pytestmark = pytest.mark.django_db
MACHINE_KEYS = {
    "code",
    "name",
    "work_center",
    "state",
    "state_since",
    "current_operation",
    "plc",
    "connection",
}
PLC_KEYS = {"last_read_at", "last_error", "good_count", "scrap_count"}
CONNECTION = {
    "protocol": "modbus_tcp",
    "host": "127.0.0.1",
    "port": 5020,
    "unit_id": 3,
    "poll_interval_ms": 500,
    "timeout_ms": 300,
    "registers": {
        "state": {"table": "holding", "address": 0},
        "state_map": {"1": "running", "2": "idle", "3": "down", "4": "setup"},
        "good_count": {"table": "holding", "address": 10, "words": 2, "word_order": "big"},
        "scrap_count": {"table": "input", "address": 20, "words": 1, "word_order": "little"},
    },
}


def url(code: str | None = None) -> str:
    return f"{API}/machines/" + (f"{code}/" if code else "")


def put(client, code: str, body: dict):
    return client.put(url(code), body, format="json")


@pytest.fixture
def center():
    return WorkCenterFactory(code="PRESS")


def test_get_one_machine_without_a_connection(erp_client, center):
    machine = MachineFactory(code="M-1", name="Press 1", work_center=center)

    response = erp_client.get(url("M-1"))

    assert response.status_code == 200
    assert response.json() == {
        "code": "M-1",
        "name": "Press 1",
        "work_center": "PRESS",
        "state": machine.state,
        "state_since": iso_utc(machine.state_since),
        "current_operation": None,
        "plc": None,
        "connection": None,
    }


def test_the_list_shows_the_running_operation_and_is_paginated(erp_client, supervisor):
    routing = make_routing(1, machines_per_center=2)
    wo = make_work_order(actor=supervisor, routing=routing, number="WO-RUN")
    machine = routing.steps.get().work_center.machines.order_by("code").first()
    op = services.start_operation(wo.operations.get(), operator=supervisor, machine=machine)
    services.set_machine_state(machine, state="running", actor=supervisor)

    rows = walk(erp_client, url() + "?page_size=1")

    assert [row["code"] for row in rows] == sorted(Machine.objects.values_list("code", flat=True))
    assert all(set(row) == MACHINE_KEYS for row in rows)
    row = next(row for row in rows if row["code"] == machine.code)
    assert row["state"] == "running"
    assert set(row["current_operation"]) >= CURRENT_OPERATION_KEYS
    assert row["current_operation"]["work_order"] == "WO-RUN"
    assert row["current_operation"]["sequence"] == op.sequence
    assert row["current_operation"]["status"] == "running"
    assert row["current_operation"]["machine"] == machine.code
    idle = next(row for row in rows if row["code"] != machine.code)
    assert idle["current_operation"] is None


def test_put_creates_a_machine_without_plc_then_is_idempotent(integrator_client, center):
    body = {"name": "Press 9", "work_center": "PRESS", "connection": None}

    created = put(integrator_client, "M-9", body)
    again = put(integrator_client, "M-9", body)

    assert created.status_code == 201, created.content
    assert set(created.json()) == MACHINE_KEYS
    assert created.json()["plc"] is None
    assert (created.json()["name"], created.json()["work_center"]) == ("Press 9", "PRESS")
    assert again.status_code == 200
    assert again.json() == created.json()
    assert Machine.objects.filter(code="M-9").count() == 1


def test_put_with_a_connection_stores_it_and_shows_the_plc_block(integrator_client, center):
    response = put(
        integrator_client,
        "M-P",
        {"name": "Press P", "work_center": "PRESS", "connection": CONNECTION},
    )

    assert response.status_code == 201, response.content
    assert response.json()["plc"] == {
        "last_read_at": None,
        "last_error": None,
        "good_count": None,
        "scrap_count": None,
    }
    conn = MachineConnection.objects.get(machine__code="M-P")
    assert (conn.host, conn.port, conn.unit_id) == ("127.0.0.1", 5020, 3)
    assert (conn.poll_interval_ms, conn.timeout_ms) == (500, 300)
    assert conn.effective_register_map()["good_count"]["address"] == 10

    again = put(
        integrator_client,
        "M-P",
        {"name": "Press P", "work_center": "PRESS", "connection": CONNECTION},
    )
    assert again.status_code == 200
    assert MachineConnection.objects.get(machine__code="M-P").updated_at == conn.updated_at


def test_the_plc_block_shows_what_the_poller_read(erp_client, integrator_client, center):
    put(integrator_client, "M-P", {"name": "P", "work_center": "PRESS", "connection": CONNECTION})
    read_at = timezone.now()
    PlcStatus.objects.filter(machine__code="M-P").update(
        good_raw=70000, scrap_raw=3, last_read_at=read_at, last_error="Timed out"
    )

    plc = erp_client.get(url("M-P")).json()["plc"]

    assert set(plc) == PLC_KEYS
    assert plc == {
        "last_read_at": iso_utc(read_at),
        "last_error": "Timed out",
        "good_count": 70000,
        "scrap_count": 3,
    }


def test_put_with_connection_null_removes_it(integrator_client, center):
    put(integrator_client, "M-P", {"name": "P", "work_center": "PRESS", "connection": CONNECTION})

    response = put(
        integrator_client, "M-P", {"name": "P", "work_center": "PRESS", "connection": None}
    )

    assert response.status_code == 200
    assert response.json()["plc"] is None
    assert not MachineConnection.objects.filter(machine__code="M-P").exists()


def test_get_returns_the_connection_as_put_takes_it(erp_client, integrator_client, center):
    put(integrator_client, "M-P", {"name": "P", "work_center": "PRESS", "connection": CONNECTION})

    connection = erp_client.get(url("M-P")).json()["connection"]

    assert connection == {**CONNECTION, "profile": None, "group": "default", "enabled": True}
    listed = erp_client.get(url()).json()["results"]
    assert [row["connection"] for row in listed if row["code"] == "M-P"] == [connection]


def test_a_rename_without_connection_keeps_it(erp_client, integrator_client, center):
    """A generated client leaves optional fields out: a rename must not disconnect the PLC."""
    put(integrator_client, "M-P", {"name": "P", "work_center": "PRESS", "connection": CONNECTION})
    conn = MachineConnection.objects.get(machine__code="M-P")

    response = put(integrator_client, "M-P", {"name": "Press P (hall B)", "work_center": "PRESS"})

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Press P (hall B)"
    assert response.json()["plc"] is not None
    assert response.json()["connection"]["host"] == "127.0.0.1"
    kept = MachineConnection.objects.get(machine__code="M-P")
    assert (kept.pk, kept.updated_at) == (conn.pk, conn.updated_at)


def test_what_get_returns_can_be_sent_back_unchanged(erp_client, integrator_client, center):
    put(integrator_client, "M-P", {"name": "P", "work_center": "PRESS", "connection": CONNECTION})
    MachineConnection.objects.filter(machine__code="M-P").update(enabled=False)
    before = MachineConnection.objects.get(machine__code="M-P")
    got = erp_client.get(url("M-P")).json()

    body = {"name": "Renamed", "work_center": got["work_center"], "connection": got["connection"]}
    response = put(integrator_client, "M-P", body)

    assert response.status_code == 200, response.content
    after = MachineConnection.objects.get(machine__code="M-P")
    assert after.updated_at == before.updated_at  # nothing about the connection changed
    assert after.enabled is False  # a disabled connection is not switched back on
    assert response.json()["connection"] == got["connection"]


def test_enabled_left_out_keeps_the_setting_and_false_stops_polling(integrator_client, center):
    put(integrator_client, "M-P", {"name": "P", "work_center": "PRESS", "connection": CONNECTION})

    off = put(
        integrator_client,
        "M-P",
        {"name": "P", "work_center": "PRESS", "connection": {**CONNECTION, "enabled": False}},
    )
    moved = put(
        integrator_client,
        "M-P",
        {"name": "P", "work_center": "PRESS", "connection": {**CONNECTION, "port": 5021}},
    )

    assert off.json()["connection"]["enabled"] is False
    assert moved.json()["connection"]["enabled"] is False
    assert moved.json()["connection"]["port"] == 5021
    assert MachineConnection.objects.get(machine__code="M-P").enabled is False


def test_a_profile_alone_and_a_group_are_accepted_as_the_readme_says(
    integrator_client, center, settings
):
    from shopfloor.plc.services import save_device_profile

    settings.MES_PLC_GROUPS = ["default", "hall-b"]
    save_device_profile(code="PRESS-S7", name="S7 press", registers=CONNECTION["registers"])
    connection = {k: v for k, v in CONNECTION.items() if k != "registers"}

    response = put(
        integrator_client,
        "M-P",
        {
            "name": "P",
            "work_center": "PRESS",
            "connection": {**connection, "profile": "PRESS-S7", "group": "hall-b"},
        },
    )

    assert response.status_code == 201, response.content
    shown = response.json()["connection"]
    assert (shown["profile"], shown["group"]) == ("PRESS-S7", "hall-b")
    assert shown["registers"] == CONNECTION["registers"]
    conn = MachineConnection.objects.get(machine__code="M-P")
    assert (conn.profile.code, conn.group) == ("PRESS-S7", "hall-b")
    assert conn.register_map is None  # the machine shares the profile's map


@pytest.fixture
def on_profile(integrator_client, center, settings):
    """Machine M-P on device profile PRESS-S7, in poll group hall-b."""
    from shopfloor.plc.services import save_device_profile

    settings.MES_PLC_GROUPS = ["default", "hall-b"]
    save_device_profile(code="PRESS-S7", name="S7 press", registers=CONNECTION["registers"])
    connection = {k: v for k, v in CONNECTION.items() if k != "registers"}
    body = {"name": "P", "work_center": "PRESS"}
    put(integrator_client, "M-P", {**body, "connection": {**connection, "profile": "PRESS-S7"}})
    response = put(
        integrator_client,
        "M-P",
        {**body, "connection": {**connection, "profile": "PRESS-S7", "group": "hall-b"}},
    )
    assert response.status_code == 200, response.content
    return connection


def test_a_contract_only_connection_keeps_group_and_profile(integrator_client, on_profile):
    """A client that knows only the contract's fields sends host, port, ..., registers:
    the machine stays in its poll group and on its profile."""
    body = {
        "name": "P",
        "work_center": "PRESS",
        "connection": {**CONNECTION, "host": "10.0.0.9"},
    }

    response = put(integrator_client, "M-P", body)

    assert response.status_code == 200, response.content
    conn = MachineConnection.objects.get(machine__code="M-P")
    assert (conn.host, conn.group, conn.profile.code) == ("10.0.0.9", "hall-b", "PRESS-S7")
    assert conn.register_map is None


def test_registers_and_profile_left_out_keep_the_map(integrator_client, on_profile):
    body = {"name": "P", "work_center": "PRESS", "connection": {"host": "10.0.0.9"}}

    response = put(integrator_client, "M-P", body)

    assert response.status_code == 200, response.content
    shown = response.json()["connection"]
    assert (shown["host"], shown["port"], shown["profile"]) == ("10.0.0.9", 502, "PRESS-S7")
    assert shown["registers"] == CONNECTION["registers"]


def test_profile_null_detaches_with_a_map_of_its_own(integrator_client, on_profile):
    own = {**CONNECTION["registers"], "state": {"table": "input", "address": 4}}
    body = {
        "name": "P",
        "work_center": "PRESS",
        "connection": {**CONNECTION, "registers": own, "profile": None},
    }

    response = put(integrator_client, "M-P", body)

    assert response.status_code == 200, response.content
    conn = MachineConnection.objects.get(machine__code="M-P")
    assert conn.profile is None and conn.register_map["state"]["address"] == 4
    assert conn.group == "hall-b"


def test_a_new_connection_needs_a_map(integrator_client, center):
    body = {"name": "P", "work_center": "PRESS", "connection": {"host": "10.0.0.9"}}

    response = put(integrator_client, "M-NEW", body)

    assert_error(response, 400, "invalid", {"connection.registers"})
    assert not Machine.objects.filter(code="M-NEW").exists()


def test_a_group_no_longer_configured_round_trips(
    erp_client, integrator_client, on_profile, settings
):
    settings.MES_PLC_GROUPS = ["default"]  # hall-b was dropped from the configuration
    got = erp_client.get(url("M-P")).json()

    body = {"name": "Renamed", "work_center": "PRESS", "connection": got["connection"]}
    sent_back = put(integrator_client, "M-P", body)
    moved = put(
        integrator_client,
        "M-P",
        {**body, "connection": {**got["connection"], "group": "hall-c"}},
    )

    assert sent_back.status_code == 200, sent_back.content
    assert_error(moved, 400, "invalid", {"connection.group"})


def test_state_map_beside_registers_is_accepted(integrator_client, center):
    registers = {k: v for k, v in CONNECTION["registers"].items() if k != "state_map"}
    connection = {
        **CONNECTION,
        "registers": registers,
        "state_map": CONNECTION["registers"]["state_map"],
    }

    response = put(
        integrator_client, "M-P", {"name": "P", "work_center": "PRESS", "connection": connection}
    )

    assert response.status_code == 201, response.content
    assert response.json()["connection"]["registers"] == CONNECTION["registers"]


@pytest.mark.parametrize(
    "change,field",
    [
        ({"protocol": "profinet"}, "connection.protocol"),
        ({"group": "nowhere"}, "connection.group"),
        ({"profile": "NO-SUCH"}, "connection.profile"),
        ({"enabled": "yes"}, "connection.enabled"),
        ({"relase": True}, "connection.relase"),
        ({"port": 0}, "connection.port"),
        ({"host": ""}, "connection.host"),
        (
            {"registers": {**CONNECTION["registers"], "state": {"table": "coil", "address": 0}}},
            "connection.registers.state.table",
        ),
        (
            {
                "registers": {
                    **CONNECTION["registers"],
                    "good_count": {"table": "holding", "address": 1, "words": 3},
                }
            },
            "connection.registers.good_count.words",
        ),
        (
            {"registers": {**CONNECTION["registers"], "state_map": {"1": "exploding"}}},
            "connection.registers.state_map",
        ),
    ],
)
def test_an_invalid_connection_is_400_and_changes_nothing(integrator_client, center, change, field):
    body = {"name": "P", "work_center": "PRESS", "connection": {**CONNECTION, **change}}

    response = put(integrator_client, "M-BAD", body)

    errors = assert_error(response, 400, "invalid")["errors"]
    assert any(name == field or name.startswith(f"{field}.") for name in errors), errors
    assert not Machine.objects.filter(code="M-BAD").exists()


def test_an_unknown_work_center_is_400(integrator_client, db):
    response = put(integrator_client, "M-X", {"name": "X", "work_center": "NOWHERE"})
    assert_error(response, 400, "unknown_work_center", {"work_center"})
    assert not Machine.objects.exists()


def test_the_erp_scope_reads_but_cannot_put(erp_client, center):
    MachineFactory(code="M-1", work_center=center)

    assert erp_client.get(url()).status_code == 200
    assert erp_client.get(url("M-1")).status_code == 200
    response = put(erp_client, "M-2", {"name": "M", "work_center": "PRESS", "connection": None})
    assert_error(response, 403, "permission_denied")
    assert not Machine.objects.filter(code="M-2").exists()


def test_anonymous_is_401_and_unknown_is_404(anon_client, erp_client, db):
    assert_error(anon_client.get(url()), 401, "not_authenticated")
    assert_error(erp_client.get(url("NO-SUCH")), 404, "not_found")


@pytest.mark.parametrize("count", [3, 30])
def test_list_query_count_does_not_grow_with_machines(
    erp_client, integrator_client, supervisor, django_assert_num_queries, count
):
    routing = make_routing(1, machines_per_center=count)
    machines = list(routing.steps.get().work_center.machines.order_by("pk"))
    for i, machine in enumerate(machines):
        put(
            integrator_client,
            machine.code,
            {
                "name": machine.name,
                "work_center": machine.work_center.code,
                "connection": CONNECTION,
            },
        )
        if i % 2 == 0:  # every other machine runs an operation
            wo = make_work_order(actor=supervisor, routing=routing)
            services.start_operation(wo.operations.get(), operator=supervisor, machine=machine)
    erp_client.get(url() + "?page_size=1")  # the client's last_used_at is written once

    # The machines, their current operations, their PLC blocks (the client is cached).
    with django_assert_num_queries(3):
        response = erp_client.get(url() + "?page_size=100")

    rows = response.json()["results"]
    assert len(rows) == count
    assert all(row["plc"] is not None for row in rows)
    assert sum(row["current_operation"] is not None for row in rows) == (count + 1) // 2


def test_a_plc_host_at_a_link_local_or_loopback_address_is_refused(
    integrator_client, center, settings
):
    settings.MES_OUTBOUND_ALLOWED_HOSTS = []
    for host, message in (
        ("169.254.169.254", "Target address 169.254.169.254 is not allowed (link-local)."),
        ("127.0.0.1", "Target address 127.0.0.1 is not allowed (loopback)."),
    ):
        body = {"name": "P", "work_center": "PRESS", "connection": {**CONNECTION, "host": host}}
        response = put(integrator_client, "M-P", body)
        errors = assert_error(response, 400, "invalid", {"connection.host"})["errors"]
        assert errors["connection.host"] == [message]
    assert not MachineConnection.objects.exists()
    # A private plant network is where PLCs live.
    body = {"name": "P", "work_center": "PRESS", "connection": {**CONNECTION, "host": "10.1.2.3"}}
    assert put(integrator_client, "M-P", body).status_code == 201
