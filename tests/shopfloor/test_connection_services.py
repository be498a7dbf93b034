"""The interface the REST API calls: set_machine_connection, plc_blocks,
connection_representation; and device profiles."""

from __future__ import annotations

import copy

import pytest
from django.utils import timezone

from mes import services
from mes.errors import ValidationFailed
from mes.formats import iso_utc
from shopfloor.models import DeviceProfile, MachineConnection, MachineStateEvent, PlcStatus
from shopfloor.plc.selectors import connection_representation, plc_blocks
from shopfloor.plc.services import (
    FailureWrite,
    ReadWrite,
    save_device_profile,
    set_machine_connection,
    store_poll_results,
)
from tests.factories import MachineFactory

from .conftest import connection, register_map

pytestmark = pytest.mark.django_db


def test_a_new_connection_is_stored_and_a_repeat_changes_nothing(machine):
    body = connection(5020)

    assert set_machine_connection(machine, connection=body) is True
    stored = MachineConnection.objects.get(machine=machine)
    assert set_machine_connection(machine, connection=copy.deepcopy(body)) is False

    again = MachineConnection.objects.get(machine=machine)
    assert again.updated_at == stored.updated_at
    assert (again.host, again.port, again.unit_id, again.timeout_ms) == ("127.0.0.1", 5020, 1, 300)
    assert again.register_map == {
        **register_map(),
        "scrap_count": None,
    }
    assert PlcStatus.objects.filter(machine=machine).exists()


def test_a_changed_connection_returns_true_and_the_get_shape_round_trips(machine):
    set_machine_connection(machine, connection=connection(5020))

    assert set_machine_connection(machine, connection={**connection(5020), "port": 5021})
    representation = connection_representation(machine)

    assert representation["port"] == 5021
    assert representation["registers"]["state_map"] == {
        "1": "running",
        "2": "idle",
        "3": "down",
        "4": "setup",
    }
    assert (representation["profile"], representation["group"]) == (None, "default")
    assert set_machine_connection(machine, connection=representation) is False


def test_invalid_input_names_the_fields_and_changes_nothing(machine):
    set_machine_connection(machine, connection=connection(5020))
    before = MachineConnection.objects.values().get(machine=machine)
    bad = connection(0)
    bad["registers"]["state"]["table"] = "coil"
    bad["registers"]["good_count"]["words"] = 4

    with pytest.raises(ValidationFailed) as info:
        set_machine_connection(machine, connection=bad)

    assert set(info.value.errors) == {
        "connection.port",
        "connection.registers.state.table",
        "connection.registers.good_count.words",
    }
    assert MachineConnection.objects.values().get(machine=machine) == before


def test_none_removes_the_connection_and_the_state_becomes_unknown(machine):
    set_machine_connection(machine, connection=connection(5020))
    services.set_machine_state(machine, state="running", actor=services.Actor.system("test"))
    PlcStatus.objects.filter(machine=machine).update(pending_good=5)

    assert set_machine_connection(machine, connection=None) is True
    assert set_machine_connection(machine, connection=None) is False

    machine.refresh_from_db()
    assert not MachineConnection.objects.filter(machine=machine).exists()
    assert machine.state == "unknown"
    # Counts not booked yet are kept and still booked.
    assert PlcStatus.objects.get(machine=machine).pending_good == 5
    assert MachineStateEvent.objects.filter(machine=machine, state="unknown").count() == 1


def test_a_profile_is_shared_and_registers_must_match_it(machine):
    profile, created = save_device_profile(
        code="PRESS-S7", name="S7 press", registers=register_map()
    )
    assert created
    other = MachineFactory()
    body = {**connection(5020), "profile": "PRESS-S7"}
    del body["registers"]

    assert set_machine_connection(machine, connection=body)
    assert set_machine_connection(other, connection={**body, "port": 5021})
    assert profile.connections.count() == 2
    representation = connection_representation(machine)
    assert representation["profile"] == "PRESS-S7"
    assert representation["registers"] == profile.register_map
    assert set_machine_connection(machine, connection=representation) is False

    with pytest.raises(ValidationFailed) as info:
        set_machine_connection(
            machine, connection={**body, "registers": register_map(state_table="input")}
        )
    assert "connection.registers" in info.value.errors
    with pytest.raises(ValidationFailed) as info:
        set_machine_connection(machine, connection={**body, "profile": "NOPE"})
    assert "connection.profile" in info.value.errors


def test_saving_a_profile_again_is_idempotent_and_a_counter_change_rebaselines(machine):
    save_device_profile(code="P", name="Press", registers=register_map())
    body = {**connection(5020), "profile": "P"}
    del body["registers"]
    set_machine_connection(machine, connection=body)
    PlcStatus.objects.filter(machine=machine).update(good_raw=77, scrap_raw=5)

    assert save_device_profile(code="P", name="Press", registers=register_map())[1] is False
    assert PlcStatus.objects.get(machine=machine).good_raw == 77

    moved = register_map(good={"table": "holding", "address": 5, "words": 1})
    assert save_device_profile(code="P", name="Press", registers=moved)[1] is True
    status = PlcStatus.objects.get(machine=machine)
    assert (status.good_raw, status.scrap_raw) == (None, 5)
    with pytest.raises(ValidationFailed) as info:
        save_device_profile(code="bad code", name="", registers={})
    assert {"code", "name", "registers.state"} <= set(info.value.errors)
    assert DeviceProfile.objects.count() == 1


def test_moving_a_connection_to_another_plc_forgets_the_raw_counters(machine):
    set_machine_connection(machine, connection=connection(5020))
    PlcStatus.objects.filter(machine=machine).update(good_raw=10, scrap_raw=2, version=4)

    set_machine_connection(machine, connection={**connection(5020), "timeout_ms": 400})
    status = PlcStatus.objects.get(machine=machine)
    assert (status.good_raw, status.scrap_raw, status.version) == (10, 2, 4)

    set_machine_connection(machine, connection={**connection(5020), "host": "10.1.1.1"})
    status = PlcStatus.objects.get(machine=machine)
    assert (status.good_raw, status.scrap_raw, status.version) == (None, None, 5)


def test_plc_blocks_in_constant_queries(django_assert_num_queries):
    machines = [MachineFactory() for _ in range(6)]
    for index, m in enumerate(machines[:4]):
        set_machine_connection(m, connection=connection(5020 + index))
    read_at = timezone.now()
    PlcStatus.objects.filter(machine=machines[0]).update(
        good_raw=70000, scrap_raw=3, last_read_at=read_at, last_error="Timed out"
    )

    with django_assert_num_queries(1):
        blocks = plc_blocks(machines)

    assert blocks[machines[0].pk] == {
        "last_read_at": iso_utc(read_at),
        "last_error": "Timed out",
        "good_count": 70000,
        "scrap_count": 3,
    }
    assert blocks[machines[1].pk] == {
        "last_read_at": None,
        "last_error": None,
        "good_count": None,
        "scrap_count": None,
    }
    assert blocks[machines[4].pk] is None and blocks[machines[5].pk] is None
    with django_assert_num_queries(0):
        assert plc_blocks([]) == {}


def test_store_poll_results_writes_only_over_the_version_read():
    machines = [MachineFactory() for _ in range(4)]
    for m in machines:
        PlcStatus.objects.create(machine=m, version=3, good_raw=10, pending_good=1)
    PlcStatus.objects.filter(machine=machines[2]).update(version=4)  # someone else wrote
    at = timezone.now()
    reads = [
        ReadWrite(m.pk, 3, good_raw=15, scrap_raw=None, good_delta=5, scrap_delta=0, read_at=at)
        for m in machines[:3]
    ]
    failures = [FailureWrite(machines[3].pk, 2, "timeout", at)]

    assert store_poll_results(reads, failures) == 2

    rows = {s.machine_id: s for s in PlcStatus.objects.all()}
    stored = [(rows[m.pk].version, rows[m.pk].good_raw, rows[m.pk].pending_good) for m in machines]
    assert stored == [
        (4, 15, 6),
        (4, 15, 6),
        (4, 10, 1),
        (3, 10, 1),
    ]
    assert abs(rows[machines[0].pk].last_read_at - at).total_seconds() < 0.001  # to the ms
    failed = rows[machines[3].pk]
    assert (failed.consecutive_failures, failed.error_count, failed.last_error) == (2, 1, "timeout")
    assert abs(failed.last_error_at - at).total_seconds() < 0.001
