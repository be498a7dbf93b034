"""The poll cycle against real Modbus TCP servers on loopback: state changes, counters in
every width and word order, wrap-around, PLC restarts, restarted workers, and faults
(refused, silent, exception responses, broken frames, a device that comes back), and a
register map changed through the API while the poller runs."""

from __future__ import annotations

import dataclasses
import time

import pytest
from django.db import DatabaseError

from mes.choices import MachineState
from mes.models import AuditRecord, Machine
from shopfloor.models import MachineStateEvent, PlcStatus
from shopfloor.plc import poller as poller_module
from shopfloor.plc.modbus import LoopThread
from shopfloor.plc.poller import GroupPoller
from shopfloor.plc.services import set_machine_connection
from tests.factories import MachineFactory

from .conftest import OPTIONS, connect, connection, cycle

pytestmark = pytest.mark.django_db


def status(machine: Machine) -> PlcStatus:
    return PlcStatus.objects.get(machine=machine)


def state_of(machine: Machine) -> str:
    return Machine.objects.get(pk=machine.pk).state


def test_a_state_change_is_recorded_once_at_the_read_that_saw_it(machine, plc, poller, clock):
    connect(machine, connection(plc.port))
    plc.state("running")

    first = cycle(poller, clock)
    machine.refresh_from_db()
    assert (first.answered, first.state_changes, machine.state) == (1, 1, "running")
    for _ in range(3):
        assert cycle(poller, clock).state_changes == 0
    plc.state("down")
    before = time.time()
    report = cycle(poller, clock)

    machine.refresh_from_db()
    assert (report.state_changes, machine.state) == (1, "down")
    events = list(MachineStateEvent.objects.filter(machine=machine).order_by("started_at"))
    assert [e.state for e in events] == ["running", "down"]
    assert events[-1].started_at == machine.state_since
    assert before <= machine.state_since.timestamp() <= time.time()
    assert events[-1].source == "plc:PRESS-1"
    audits = AuditRecord.objects.filter(entity_type="machine", entity_id=machine.pk)
    assert list(audits.values_list("to_state", flat=True)) == ["running", "down"]
    assert set(audits.values_list("actor_name", flat=True)) == {"plc:PRESS-1"}


def test_an_unmapped_state_code_makes_the_state_unknown_and_says_why(machine, plc, poller, clock):
    connect(machine, connection(plc.port))
    plc.bank.set("holding", 0, [42])

    cycle(poller, clock)

    assert state_of(machine) == "unknown"
    assert status(machine).last_error == "State code 42 is not in the state map."
    plc.state("idle")
    cycle(poller, clock)
    assert (state_of(machine), status(machine).last_error) == ("idle", "")


@pytest.mark.parametrize(
    "table,words,order",
    [
        ("holding", 1, "big"),
        ("input", 1, "big"),
        ("holding", 2, "big"),
        ("holding", 2, "little"),
        ("input", 2, "little"),
    ],
)
def test_counters_of_every_width_and_word_order(machine, plc, poller, clock, table, words, order):
    good = {"table": table, "address": 1, "words": words, "word_order": order}
    scrap = {"table": table, "address": 5, "words": words, "word_order": order}
    connect(machine, connection(plc.port, good=good, scrap=scrap))
    plc.state("running")
    start = 65000 if words == 1 else 70000  # above 16 bits: both words matter
    plc.counter(start, words=words, order=order, table=table)
    plc.counter(10, address=5, words=words, order=order, table=table)

    cycle(poller, clock)  # baseline: what was made before is not counted
    assert (status(machine).good_raw, status(machine).pending_good) == (start, 0)
    plc.counter(start + 25, words=words, order=order, table=table)
    plc.counter(13, address=5, words=words, order=order, table=table)
    cycle(poller, clock)

    s = status(machine)
    assert (s.good_raw, s.scrap_raw, s.pending_good, s.pending_scrap) == (start + 25, 13, 25, 3)


@pytest.mark.parametrize("words", [1, 2])
def test_wrap_around(machine, plc, poller, clock, words):
    top = (1 << (16 * words)) - 1
    connect(machine, connection(plc.port, good={"table": "holding", "address": 1, "words": words}))
    plc.counter(top - 4, words=words)
    cycle(poller, clock)

    plc.counter(top, words=words)
    cycle(poller, clock)
    plc.counter(top + 8, words=words)  # wraps: 8 parts past the top is 7
    cycle(poller, clock)

    s = status(machine)
    assert (s.good_raw, s.pending_good) == (7, 4 + 8)


def test_a_plc_restart_counts_the_parts_since_and_never_the_old_ones(machine, plc, poller, clock):
    connect(machine, connection(plc.port))
    plc.counter(5000)
    cycle(poller, clock)
    plc.counter(5010)
    cycle(poller, clock)

    plc.counter(3)  # the PLC restarted and has made 3 parts since
    cycle(poller, clock)

    assert (status(machine).good_raw, status(machine).pending_good) == (3, 13)


def test_garbage_counter_jumps_are_not_counted(machine, plc, poller, clock):
    connect(machine, connection(plc.port))
    plc.counter(100)
    cycle(poller, clock)

    plc.counter(4_000_000)  # a second later: no machine makes that many parts
    cycle(poller, clock)
    plc.counter(4_000_002)
    cycle(poller, clock)

    assert (status(machine).good_raw, status(machine).pending_good) == (4_000_002, 2)


def test_a_restarted_worker_neither_loses_nor_double_counts(machine, plc, poller, clock):
    connect(machine, connection(plc.port))
    plc.counter(1000)
    cycle(poller, clock)
    plc.counter(1010)
    cycle(poller, clock)
    assert status(machine).pending_good == 10
    poller.close()  # the worker process ends

    plc.counter(1017)  # parts made while no worker ran
    loop = LoopThread(name="second-worker")
    second = GroupPoller("default", options=OPTIONS, loop=loop, clock=clock)
    try:
        cycle(second, clock)
        cycle(second, clock)
    finally:
        second.close()
        loop.stop()

    assert (status(machine).good_raw, status(machine).pending_good) == (1017, 17)


def test_a_failed_write_is_counted_by_the_next_cycle_exactly_once(
    machine, plc, poller, clock, monkeypatch
):
    connect(machine, connection(plc.port))
    plc.counter(50)
    cycle(poller, clock)
    plc.counter(60)

    def broken(*args, **kwargs):
        raise DatabaseError("disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr(poller_module, "store_poll_results", broken)
        cycle(poller, clock)  # read 60, could not store it
    assert status(machine).pending_good == 0
    plc.counter(64)
    cycle(poller, clock)

    assert (status(machine).good_raw, status(machine).pending_good) == (64, 14)


def test_two_pollers_on_one_group_never_double_count(machine, plc, poller, clock):
    """A misconfigured deployment (two processes on one queue) costs reads, not counts: a
    poller whose write finds the counters moved on takes the stored values and goes on."""
    connect(machine, connection(plc.port))
    loop = LoopThread(name="second-worker")
    second = GroupPoller("default", options=OPTIONS, loop=loop, clock=clock)
    try:
        plc.counter(200)
        cycle(poller, clock)
        cycle(second, clock)
        plc.counter(205)
        cycle(poller, clock)  # the second one wrote since: not stored, reloaded
        assert status(machine).pending_good == 0
        plc.counter(211)
        cycle(poller, clock)
        assert status(machine).pending_good == 11
        plc.counter(220)
        cycle(second, clock)
        cycle(second, clock)
    finally:
        second.close()
        loop.stop()

    assert (status(machine).good_raw, status(machine).pending_good) == (220, 20)


# --- faults -----------------------------------------------------------------------------------


def test_connection_refused_goes_offline_after_the_configured_failures(
    machine, closed_port, poller, clock
):
    connect(machine, connection(closed_port))
    set_state = Machine.objects.filter(pk=machine.pk)
    set_state.update(state="running")

    first = cycle(poller, clock)
    assert (first.failed, dict(first.errors), state_of(machine)) == (1, {"refused": 1}, "running")
    s = status(machine)
    assert (s.consecutive_failures, s.error_count) == (1, 1)
    # What users and API clients read does not tell a closed port (see the silent server).
    assert s.last_error == f"no Modbus answer from 127.0.0.1:{closed_port}"

    cycle(poller, clock)  # OPTIONS.offline_after == 2
    machine.refresh_from_db()
    assert machine.state == "offline"
    event = MachineStateEvent.objects.get(machine=machine, state="offline")
    # Offline since the first failed poll (the status keeps times to the millisecond).
    assert abs(event.started_at - s.last_error_at).total_seconds() < 0.001
    assert event.reason == f"No Modbus answer from 127.0.0.1:{closed_port}"


def test_a_silent_server_times_out_within_the_device_timeout(machine, silent_port, poller, clock):
    connect(machine, connection(silent_port, timeout_ms=200))

    started = time.monotonic()
    report = cycle(poller, clock)
    elapsed = time.monotonic() - started

    assert dict(report.errors) == {"timeout": 1}
    assert 0.15 < elapsed < 1.0
    assert status(machine).last_error == f"no Modbus answer from 127.0.0.1:{silent_port}"


def test_exception_responses_are_logged_counted_and_survived(machine, plc, poller, clock, caplog):
    connect(machine, connection(plc.port))
    plc.state("running")
    cycle(poller, clock)
    plc.bank.exception = 2  # illegal data address

    report = cycle(poller, clock)

    assert dict(report.errors) == {"exception": 1}
    assert "exception 2 (illegal address)" in status(machine).last_error
    assert any(
        "PRESS-1" in r.getMessage() and "exception" in r.getMessage() for r in caplog.records
    )
    plc.bank.exception = None
    assert cycle(poller, clock).answered == 1
    assert status(machine).consecutive_failures == 0
    assert state_of(machine) == "running"


def test_broken_frames_are_counted_and_the_link_recovers(machine, plc, poller, clock):
    connect(machine, connection(plc.port, timeout_ms=300))
    plc.state("idle")
    cycle(poller, clock)
    plc.bank.garble = True

    report = cycle(poller, clock)

    assert report.failed == 1
    assert dict(report.errors) == {"malformed": 1}, report.errors
    assert status(machine).last_error == f"no Modbus answer from 127.0.0.1:{plc.port}"
    plc.bank.garble = False
    assert cycle(poller, clock).answered == 1


def test_a_device_that_comes_back_recovers_and_backs_off_while_dead(
    machine, plc_factory, poller, clock
):
    plc = plc_factory()
    connect(machine, connection(plc.port))
    plc.state("running")
    plc.counter(10)
    cycle(poller, clock)
    plc.stop()

    for _ in range(2):
        assert cycle(poller, clock).failed == 1
    assert state_of(machine) == "offline"
    # Offline: retried after 2, 4, 8 (the cap) seconds, not every second.
    attempts = [cycle(poller, clock).polled for _ in range(16)]
    assert sum(attempts) == 3, attempts

    plc.counter(15)
    plc.start()  # same port
    clock.advance(8)
    report = poller.run_cycle()

    assert report.answered == 1
    machine.refresh_from_db()
    assert machine.state == "running"
    assert [e.state for e in MachineStateEvent.objects.filter(machine=machine)] == [
        "running",
        "offline",
        "running",
    ]
    assert (status(machine).consecutive_failures, status(machine).pending_good) == (0, 5)


def test_a_dead_device_does_not_delay_the_others(plc, silent_port, poller, clock, db):
    live = MachineFactory(code="LIVE")
    dead = MachineFactory(code="DEAD")
    connect(live, connection(plc.port))
    connect(dead, connection(silent_port, timeout_ms=3000))
    plc.state("running")
    poller.options = dataclasses.replace(OPTIONS, wait=0.3)

    started = time.monotonic()
    report = cycle(poller, clock)
    elapsed = time.monotonic() - started

    assert elapsed < 1.0  # not the dead device's 3 s
    assert (report.polled, report.answered, report.failed) == (2, 1, 0)
    assert state_of(live) == "running"
    # The dead device's read stays in flight; the next cycles do not start another one.
    assert cycle(poller, clock).polled == 1


def test_a_register_map_changed_through_the_api_is_picked_up_without_restart(
    machine, plc, poller, clock
):
    set_machine_connection(machine, connection=connection(plc.port))
    plc.state("running")
    plc.bank.set("holding", 10, [3])  # where the new map will read the state
    plc.counter(100)
    plc.counter(7, address=20, words=1)
    cycle(poller, clock)
    assert state_of(machine) == "running"

    moved = connection(plc.port, good={"table": "holding", "address": 20, "words": 1})
    moved["registers"]["state"]["address"] = 10
    assert set_machine_connection(machine, connection=moved)
    cycle(poller, clock)
    plc.counter(9, address=20, words=1)
    cycle(poller, clock)

    assert state_of(machine) == "down"
    s = status(machine)
    assert (s.good_raw, s.pending_good) == (9, 2)  # re-based on the new counter


def test_a_removed_connection_is_no_longer_polled(machine, plc, poller, clock):
    set_machine_connection(machine, connection=connection(plc.port))
    plc.state("running")
    assert cycle(poller, clock).polled == 1
    assert state_of(machine) == "running"

    set_machine_connection(machine, connection=None)

    assert cycle(poller, clock).devices == 0
    assert state_of(machine) == MachineState.UNKNOWN
