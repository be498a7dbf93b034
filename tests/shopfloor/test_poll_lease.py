"""A poll group's window under its lease (shopfloor.plc.window): the worker that gets the
group's lease polls and gives it back; a worker that finds it held skips its beat; a
killed worker's lease runs out and the next one takes the group over. Against a simulated
PLC on loopback, committed for real (the lease must be seen by the other workers)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from mes.leases import take_lease
from mes.models import Lease, Machine
from shopfloor.models import PollGroupState
from shopfloor.plc.poller import poller_for
from shopfloor.plc.services import set_machine_connection
from shopfloor.plc.timing import poll_lease_seconds
from shopfloor.plc.window import Window, poll_lease, poll_window
from tests.support import run_together

from .conftest import connect, connection

OTHER_WORKER = "host-b:202:bbbb"
DEAD_WORKER = "host-c:303:dead"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def group(settings):
    name = f"t{uuid.uuid4().hex[:8]}"
    settings.MES_PLC_GROUPS = ["default", name]
    settings.MES_PLC_BEAT_MS = 400
    yield name
    poller_for(name).close()


@pytest.fixture
def polled_machine(plc, machine, group) -> Machine:
    plc.state("running")
    plc.counter(100)
    set_machine_connection(machine, connection={**connection(plc.port), "group": group})
    return machine


def state_of(machine: Machine) -> str:
    return Machine.objects.get(pk=machine.pk).state


def test_a_window_polls_under_the_lease_and_gives_it_back(polled_machine, group):
    window = poll_window(group)
    assert isinstance(window, Window) and window.reports and window.started <= window.ended
    assert state_of(polled_machine) == "running"
    lease = Lease.objects.get(name=poll_lease(group))
    assert lease.holder == window.holder and lease.expires_at is None  # given back
    assert PollGroupState.objects.get(group=group).cycles == len(window.reports)
    assert poll_window(group) is not None  # the next beat gets it at once


def test_a_beat_skips_while_another_worker_polls_the_group(polled_machine, group, caplog):
    take_lease(poll_lease(group), holder=OTHER_WORKER, seconds=30)
    with caplog.at_level(logging.DEBUG, logger="shopfloor.plc"):
        assert poll_window(group) is None
    assert state_of(polled_machine) != "running"  # not read
    assert not PollGroupState.objects.filter(group=group).exists()
    assert Lease.objects.get(name=poll_lease(group)).holder == OTHER_WORKER
    skipped = [r for r in caplog.records if getattr(r, "poll_skipped", False)]
    assert len(skipped) == 1 and OTHER_WORKER in skipped[0].getMessage()


def test_a_killed_workers_lease_runs_out_and_the_group_is_taken_over(polled_machine, group, caplog):
    name = poll_lease(group)
    take_lease(name, holder=DEAD_WORKER, seconds=30)  # then SIGKILL: never given back
    assert poll_window(group) is None
    Lease.objects.filter(name=name).update(expires_at=timezone.now() - timedelta(seconds=1))
    with caplog.at_level(logging.WARNING, logger="shopfloor.plc"):
        window = poll_window(group)
    assert window is not None and state_of(polled_machine) == "running"
    lease = Lease.objects.get(name=name)
    assert (lease.takeovers, lease.expires_at) == (1, None)
    assert any(DEAD_WORKER in r.getMessage() for r in caplog.records)


def test_of_two_workers_given_one_beat_at_once_only_one_polls(polled_machine, group):
    results = run_together([lambda: poll_window(group)] * 2, what="a poll window")
    assert sorted(type(r).__name__ for r in results) == ["NoneType", "Window"], results
    window = next(r for r in results if r is not None)
    assert PollGroupState.objects.get(group=group).cycles == len(window.reports)


def test_a_window_starts_no_cycle_after_its_end_even_when_one_overran(poller, clock, plc, machine):
    plc.state("running")
    connect(machine, {**connection(plc.port), "poll_interval_ms": 100})
    cycle = poller.run_cycle

    def overrunning_cycle():
        report = cycle()
        clock.advance(1.5)  # a slow write, say: the beat's window is over
        return report

    poller.run_cycle = overrunning_cycle
    assert len(poller.run_window(1.0)) == 1


@pytest.mark.parametrize(
    ("beat", "wait"), [(1.0, 0.5), (0.25, 0.1), (0.4, 0.2), (5.0, 0.5), (0.1, 0.05)]
)
def test_the_lease_outlasts_a_window_and_runs_out_within_two_beats(beat, wait):
    seconds = poll_lease_seconds(beat=beat, wait=wait)
    # A window starts its last cycle before 0.9 of a beat and waits at most `wait` in it.
    assert seconds >= 0.9 * beat + wait + 0.25 * beat
    # A killed holder's lease runs out before the beat after next (with the defaults, where
    # the wait is at most half a beat).
    assert seconds < 2 * beat
