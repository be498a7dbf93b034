"""Where PLC connections may point, and what a failed poll tells: private plant networks are
fine; loopback (unless allowed), link-local, unspecified, multicast and reserved hosts are
refused when configured and again when the poller connects; and a closed port, a silent
one and a server of another protocol read the same, in words and in time, to whoever can
see a machine's status (so the MES is nobody's port scanner)."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.urls import reverse

from erp_sync.models import Scope
from mes.errors import ValidationFailed
from shopfloor.models import DeviceProfile, MachineConnection, PlcStatus
from shopfloor.plc.services import save_device_profile, set_machine_connection
from tests.erp_sync.conftest import bearer_client
from tests.factories import MachineFactory

from .conftest import connection, cycle, register_map

pytestmark = pytest.mark.django_db


def at(host: str, port: int = 502) -> dict:
    return {**connection(port), "host": host}


@pytest.mark.parametrize(
    "host,address,kind",
    [
        ("169.254.169.254", "169.254.169.254", "link-local"),
        ("fe80::1", "fe80::1", "link-local"),
        ("::ffff:169.254.169.254", "169.254.169.254", "link-local"),
        ("0.0.0.0", "0.0.0.0", "unspecified"),
        ("224.0.0.1", "224.0.0.1", "multicast"),
        ("240.0.0.1", "240.0.0.1", "reserved"),
        ("127.0.0.1", "127.0.0.1", "loopback"),
        ("::1", "::1", "loopback"),
        ("localhost", "127.0.0.1", "loopback"),
    ],
)
def test_a_host_no_plc_lives_at_is_refused_naming_the_field(machine, settings, host, address, kind):
    settings.MES_OUTBOUND_ALLOWED_HOSTS = []

    with pytest.raises(ValidationFailed) as refused:
        set_machine_connection(machine, connection=at(host))

    message = f"Target address {address} is not allowed ({kind})."
    assert refused.value.errors == {"connection.host": [message]}
    assert not MachineConnection.objects.filter(machine=machine).exists()


def test_private_networks_are_fine_loopback_only_when_the_allow_list_names_it(machine, settings):
    settings.MES_OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(ValidationFailed):
        set_machine_connection(machine, connection=at("127.0.0.1"))

    for host in ("10.0.0.9", "172.16.4.2", "192.168.1.20", "fd00::7", "plc-7.plant.local"):
        assert set_machine_connection(machine, connection=at(host)) is True
    settings.MES_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    assert set_machine_connection(machine, connection=at("127.0.0.1")) is True
    assert MachineConnection.objects.get(machine=machine).host == "127.0.0.1"


def test_the_admin_form_refuses_the_host_on_its_field(client, admin_user, settings):
    settings.MES_OUTBOUND_ALLOWED_HOSTS = []
    client.force_login(admin_user)
    machine = MachineFactory(code="PRESS-9")
    save_device_profile(code="P", name="Press", registers=register_map())
    form = {
        "machine": machine.pk,
        "host": "169.254.169.254",
        "port": "502",
        "unit_id": "1",
        "poll_interval_ms": "1000",
        "timeout_ms": "400",
        "profile": DeviceProfile.objects.get(code="P").pk,
        "register_map": "",
        "group": "default",
        "enabled": "on",
    }

    refused = client.post(reverse("admin:shopfloor_machineconnection_add"), form)

    assert refused.status_code == 200
    html = refused.content.decode()
    assert "Target address 169.254.169.254 is not allowed (link-local)." in html
    assert not MachineConnection.objects.filter(machine=machine).exists()


def test_the_poller_checks_what_a_name_resolves_to_before_connecting(
    machine, plc, poller, clock, settings
):
    settings.MES_OUTBOUND_ALLOWED_HOSTS = ["localhost"]
    set_machine_connection(machine, connection=at("localhost", plc.port))
    plc.state("running")
    settings.MES_OUTBOUND_ALLOWED_HOSTS = []  # the operator narrowed the allow-list since

    report = cycle(poller, clock)

    assert dict(report.errors) == {"blocked": 1}
    status = PlcStatus.objects.get(machine=machine)
    assert status.last_read_at is None
    assert status.last_error.startswith("target address ")
    assert status.last_error.endswith(" is not allowed (loopback)")


@pytest.fixture
def foreign_port(server_loop):
    """A server of another protocol: a banner, then it hangs up."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        await writer.drain()
        writer.close()

    async def start() -> asyncio.AbstractServer:
        return await asyncio.start_server(greet, "127.0.0.1", 0)

    server = server_loop.run(start(), timeout=10)
    yield server.sockets[0].getsockname()[1]

    async def stop() -> None:
        server.close()

    server_loop.run(stop(), timeout=10)


@pytest.mark.parametrize("target", ["closed_port", "silent_port", "foreign_port"])
def test_a_client_cannot_tell_a_closed_port_from_a_silent_or_foreign_one(
    target, request, machine, poller, clock
):
    port = request.getfixturevalue(target)
    set_machine_connection(machine, connection={**connection(port), "timeout_ms": 400})
    api = bearer_client("erp", Scope.ERP)

    started = time.monotonic()
    report = cycle(poller, clock)
    elapsed = time.monotonic() - started

    assert report.failed == 1
    plc = api.get(f"/api/v1/machines/{machine.code}/").json()["plc"]
    assert plc["last_error"] == f"no Modbus answer from 127.0.0.1:{port}"
    # However soon the failure was known, it is recorded when the timeout is up.
    assert elapsed >= 0.38, elapsed
