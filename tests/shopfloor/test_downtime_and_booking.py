"""Stops while an operation runs become downtime records; counted parts are booked on the
running operation in batches, or kept as unassigned counts, never twice."""

from __future__ import annotations

import dataclasses

import pytest

from mes import services
from mes.errors import ValidationFailed
from mes.models import AuditRecord, Operation
from shopfloor.downtime import downtimes_needing_reason, open_downtime, set_downtime_reason
from shopfloor.models import DowntimeRecord, PlcStatus, UnassignedCount
from shopfloor.plc import services as plc_services
from shopfloor.plc.selectors import state_timeline
from shopfloor.plc.services import book_pending_counts
from shopfloor.tasks import book_plc_counts
from tests.factories import make_work_order

from .conftest import OPTIONS, connect, connection, cycle

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(supervisor, operator):
    """A running operation on a machine of its work center."""
    wo = make_work_order(actor=supervisor, steps=1, quantity=500)
    op = wo.operations.get()
    machine = op.work_center.machines.get()
    return services.start_operation(op, operator=operator, machine=machine)


def test_a_breakdown_during_an_operation_opens_a_downtime_until_it_runs(
    running, plc, poller, clock, operator
):
    machine = running.machine
    connect(machine, connection(plc.port))
    plc.state("running")
    cycle(poller, clock)
    assert not DowntimeRecord.objects.exists()

    plc.state("down")
    cycle(poller, clock)
    record = open_downtime(machine)
    assert record is not None
    assert (record.cause, record.operation, record.started_at) == (
        "down",
        running,
        machine.state_events.order_by("-started_at").first().started_at,
    )
    assert list(downtimes_needing_reason(machine.work_center)) == [record]
    plc.state("setup")  # still not running: the stop goes on
    cycle(poller, clock)
    assert open_downtime(machine) == record

    plc.state("running")
    cycle(poller, clock)
    record.refresh_from_db()
    assert record.ended_at is not None and record.ended_at > record.started_at
    assert open_downtime(machine) is None
    given = set_downtime_reason(record, note=" Hydraulic leak ", actor=operator)
    assert (given.reason, given.reason_choice, given.reason_by) == (
        "Hydraulic leak",
        None,
        operator,
    )
    assert not downtimes_needing_reason().exists()
    with pytest.raises(ValidationFailed):
        set_downtime_reason(record, note="  ", actor=operator)


def test_a_stop_without_a_running_operation_is_no_downtime(machine, plc, poller, clock):
    connect(machine, connection(plc.port))
    plc.state("down")

    cycle(poller, clock)

    assert machine.state_events.get().state == "down"
    assert not DowntimeRecord.objects.exists()


def test_idle_beyond_the_threshold_during_an_operation_opens_a_downtime_from_its_start(
    running, plc, poller, clock
):
    machine = running.machine
    connect(machine, connection(plc.port))
    poller.options = dataclasses.replace(OPTIONS, idle_downtime_after=0.0)
    plc.state("idle")

    cycle(poller, clock)

    record = DowntimeRecord.objects.get()
    machine.refresh_from_db()
    assert (record.cause, record.started_at, record.ended_at) == ("idle", machine.state_since, None)
    cycle(poller, clock)
    assert DowntimeRecord.objects.count() == 1


def test_the_state_timeline_covers_a_period(machine, plc, poller, clock):
    connect(machine, connection(plc.port))
    for state in ("running", "down", "running"):
        plc.state(state)
        cycle(poller, clock)
    events = list(machine.state_events.order_by("started_at"))

    periods = state_timeline(machine, start=events[0].started_at, end=events[2].started_at)

    assert periods == [
        ("running", events[0].started_at, events[1].started_at),
        ("down", events[1].started_at, events[2].started_at),
    ]


# --- booking -------------------------------------------------------------------------------------


def pending(machine) -> tuple[int, int]:
    status = PlcStatus.objects.get(machine=machine)
    return status.pending_good, status.pending_scrap


def test_counts_are_booked_on_the_running_operation_in_one_report(running, plc, poller, clock):
    machine = running.machine
    connect(machine, connection(plc.port, scrap={"table": "holding", "address": 5}))
    plc.counter(100)
    cycle(poller, clock)
    for good in (103, 110, 112):
        plc.counter(good)
        cycle(poller, clock)
    plc.counter(2, address=5, words=1)
    cycle(poller, clock)  # scrap baseline was 0
    assert pending(machine) == (12, 2)

    book_plc_counts()  # the Celery task, run in place

    op = Operation.objects.get(pk=running.pk)
    assert (op.quantity_good, op.quantity_scrap) == (12, 2)
    assert pending(machine) == (0, 0)
    reports = AuditRecord.objects.filter(entity_id=op.pk, action="report_quantity")
    assert reports.count() == 1
    assert reports.get().actor_name == f"plc:{machine.code}"
    assert book_pending_counts().booked == 0  # nothing twice
    assert Operation.objects.get(pk=running.pk).quantity_good == 12


def test_counts_without_a_running_operation_are_kept_unassigned(machine):
    PlcStatus.objects.create(machine=machine, pending_good=7, pending_scrap=1)

    first = book_pending_counts()
    PlcStatus.objects.filter(machine=machine).update(pending_good=3)
    book_pending_counts()

    assert (first.booked, first.unassigned, first.good, first.scrap) == (0, 1, 7, 1)
    row = UnassignedCount.objects.get(machine=machine)
    assert (row.good, row.scrap, row.closed_at) == (10, 1, None)
    assert "No operation was running" in row.note
    assert pending(machine) == (0, 0)
    assert plc_services.close_unassigned_count(row)
    PlcStatus.objects.filter(machine=machine).update(pending_good=2)
    book_pending_counts()
    assert UnassignedCount.objects.filter(machine=machine, closed_at__isnull=True).get().good == 2


def test_a_refused_booking_keeps_the_counts_once_as_unassigned(running):
    machine = running.machine
    # A counter gone wild: more parts than a quantity can hold is refused by the service.
    PlcStatus.objects.create(machine=machine, pending_good=10**12)

    summary = book_pending_counts()

    assert (summary.booked, summary.unassigned) == (0, 1)
    assert UnassignedCount.objects.get(machine=machine).good == 10**12
    note = UnassignedCount.objects.get(machine=machine).note
    assert note.startswith(f"{running.label}: ") and "11 digits" in note
    assert Operation.objects.get(pk=running.pk).quantity_good == 0
    assert pending(machine) == (0, 0)


def test_a_held_work_order_takes_no_counts(running, supervisor):
    machine = running.machine
    services.hold_work_order(running.work_order, actor=supervisor, reason="Quality hold")
    PlcStatus.objects.create(machine=machine, pending_good=5)

    book_pending_counts()

    assert Operation.objects.get(pk=running.pk).quantity_good == 0
    assert UnassignedCount.objects.get(machine=machine).good == 5
