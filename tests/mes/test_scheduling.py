"""The live schedule against the database: what a re-plan writes, what it tells the ERP, and
when it runs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from erp_sync.models import OutboxEvent
from mes import services
from mes.models import AuditRecord, Operation, ScheduleState, WorkOrder
from mes.scheduling.services import replan, replan_if_needed
from tests.factories import MachineFactory, make_routing, make_work_order

pytestmark = pytest.mark.django_db

# RoutingStepFactory: 300 s setup, 12.5 s per part; make_work_order: 100 parts.
STEP = timedelta(seconds=300 + 12.5 * 100)


def schedule_events(number: str) -> list[dict]:
    return [
        e.payload
        for e in OutboxEvent.objects.filter(
            event_type="schedule.changed", aggregate_key=number
        ).order_by("id")
    ]


def fresh(wo: WorkOrder) -> WorkOrder:
    return WorkOrder.objects.get(pk=wo.pk)


def planned(wo: WorkOrder) -> list[tuple]:
    return list(
        Operation.objects.filter(work_order=wo)
        .order_by("sequence")
        .values_list("planned_start", "planned_end")
    )


def test_a_released_order_is_planned_and_the_erp_is_told(supervisor):
    wo = make_work_order(actor=supervisor, steps=2)
    version = fresh(wo).version
    now = timezone.now()

    summary = replan(reason="test", now=now)

    assert (summary.orders, summary.changed) == (1, 1)
    assert planned(wo) == [(now, now + STEP), (now + STEP, now + 2 * STEP)]
    wo = fresh(wo)
    assert (wo.projected_end, wo.at_risk) == (now + 2 * STEP, False)
    assert wo.version == version + 1  # a new ETag: the representation changed
    shown = json.loads(wo.rendered)
    assert shown["projected_end"] == (now + 2 * STEP).isoformat().replace("+00:00", "Z")
    assert shown["operations"][1]["planned_start"] is not None
    assert shown["at_risk"] is False
    assert schedule_events(wo.number) == [
        {
            "work_order": wo.number,
            "projected_end": shown["projected_end"],
            "previous_projected_end": None,
            "at_risk": False,
            "reason": "test",
        }
    ]
    audit = AuditRecord.objects.get(work_order=wo, action="reschedule")
    assert (audit.actor_name, audit.reason) == ("scheduler", "test")
    assert audit.changes["projected_end"] == [None, shown["projected_end"]]


def test_a_plan_that_moved_less_than_the_tolerance_is_not_rewritten(supervisor, settings):
    settings.MES_SCHEDULE_TOLERANCE_SECONDS = 60
    wo = make_work_order(actor=supervisor, steps=1)
    now = timezone.now()
    replan(now=now)
    version = fresh(wo).version

    assert replan(now=now).changed == 0
    assert replan(now=now + timedelta(seconds=50)).changed == 0
    assert fresh(wo).version == version
    assert len(schedule_events(wo.number)) == 1

    # Waiting work slides with the clock; beyond the tolerance that is news.
    later = now + timedelta(seconds=120)
    assert replan(now=later, reason="later").changed == 1
    wo = fresh(wo)
    assert wo.projected_end == later + STEP
    events = schedule_events(wo.number)
    assert len(events) == 2 and events[1]["previous_projected_end"] is not None


def test_a_machine_going_down_pushes_the_order_late_and_says_why(supervisor, operator, settings):
    settings.MES_SCHEDULE_DOWN_ALLOWANCE_MINUTES = 30
    wo = make_work_order(actor=supervisor, steps=1)
    op = wo.operations.get()
    op = services.start_operation(op, operator=operator)
    now = timezone.now()
    services.update_work_order(wo, actor=supervisor, due_date=now + timedelta(minutes=40))
    assert replan_if_needed(now=now) is not None
    run = timedelta(seconds=12.5 * 100)  # running: no setup any more
    wo = fresh(wo)
    assert (wo.projected_end, wo.at_risk) == (now + run, False)

    services.set_machine_state(op.machine, state="down", actor=operator)
    later = now + timedelta(seconds=5)
    summary = replan_if_needed(now=later)

    assert summary is not None and f"{op.machine.code} down" in summary.reason
    wo = fresh(wo)
    assert wo.projected_end == later + timedelta(minutes=30) + run
    assert wo.at_risk is True
    event = schedule_events(wo.number)[-1]
    assert event["at_risk"] is True
    assert f"{op.machine.code} down" in event["reason"]
    assert event["previous_projected_end"] == (now + run).isoformat().replace("+00:00", "Z")


def test_a_rush_order_goes_ahead_of_an_earlier_due_one(supervisor):
    routing = make_routing(1)
    first = make_work_order(actor=supervisor, routing=routing, due_in_days=1)
    now = timezone.now()
    replan(now=now)
    assert planned(first) == [(now, now + STEP)]

    rush = make_work_order(actor=supervisor, routing=routing, due_in_days=2)
    services.update_work_order(rush, actor=supervisor, priority="rush")
    replan(now=now, reason="rush")

    assert planned(rush) == [(now, now + STEP)]
    assert planned(first) == [(now + STEP, now + 2 * STEP)]
    assert fresh(first).projected_end == now + 2 * STEP
    assert schedule_events(first.number)[-1]["reason"] == "rush"


def test_an_order_on_hold_leaves_the_schedule(supervisor):
    wo = make_work_order(actor=supervisor, steps=2)
    now = timezone.now()
    replan(now=now)
    services.hold_work_order(wo, actor=supervisor, reason="Drawing revision")

    replan(now=now, reason="held")

    wo = fresh(wo)
    assert (wo.projected_end, wo.at_risk) == (None, False)
    assert planned(wo) == [(None, None), (None, None)]
    assert json.loads(wo.rendered)["projected_end"] is None
    last = schedule_events(wo.number)[-1]
    assert (last["projected_end"], last["reason"]) == (None, "held")


def test_finished_operations_keep_the_plan_they_had(supervisor, operator):
    wo = make_work_order(actor=supervisor, steps=2)
    now = timezone.now()
    replan(now=now)
    first = wo.operations.get(sequence=10)
    first = services.start_operation(first, operator=operator)
    services.report_quantity(first, actor=operator, good=100)
    services.complete_operation(first, actor=operator)

    later = now + timedelta(minutes=10)
    replan(now=later)

    (start10, end10), (start20, end20) = planned(wo)
    assert (start10, end10) == (now, now + STEP)  # plan against actual, for the record
    assert (start20, end20) == (later, later + STEP)
    assert fresh(wo).projected_end == later + STEP


def test_replanning_waits_for_a_change_a_new_machine_or_the_clock(supervisor, settings):
    settings.MES_SCHEDULE_REFRESH_SECONDS = 60
    routing = make_routing(1)
    wo = make_work_order(actor=supervisor, routing=routing)
    now = timezone.now()
    assert replan_if_needed(now=now) is not None
    assert replan_if_needed(now=now + timedelta(seconds=1)) is None  # nothing happened

    # Its own writes (audit records of the re-plan) do not wake the scheduler.
    assert AuditRecord.objects.filter(action="reschedule").exists()
    assert replan_if_needed(now=now + timedelta(seconds=2)) is None

    services.update_work_order(wo, actor=supervisor, notes="Customer called")
    woken = replan_if_needed(now=now + timedelta(seconds=3))
    assert woken is not None and f"{wo.number} update" in woken.reason

    MachineFactory(work_center=routing.steps.get().work_center)  # more capacity
    added = replan_if_needed(now=now + timedelta(seconds=4))
    assert added is not None and "machines changed" in added.reason

    assert replan_if_needed(now=now + timedelta(seconds=30)) is None
    assert replan_if_needed(now=now + timedelta(seconds=65)).reason == "the clock moved on"


def test_counts_from_plcs_wait_for_the_refresh_and_counts_at_a_terminal_re_plan(
    supervisor, operator, settings
):
    """A booking pass of PLC counts every few seconds on every running machine would re-plan
    the plant as often; the periodic refresh takes them in."""
    settings.MES_SCHEDULE_REFRESH_SECONDS = 60
    wo = make_work_order(actor=supervisor, steps=1)
    op = services.start_operation(wo.operations.get(), operator=operator)
    now = timezone.now()
    assert replan_if_needed(now=now) is not None

    plc = services.Actor.system("plc:M-1")
    services.report_quantities([services.QuantityReport(op.pk, plc, good=5)])
    assert replan_if_needed(now=now + timedelta(seconds=5)) is None

    services.report_quantity(op, actor=operator, good=1)
    woken = replan_if_needed(now=now + timedelta(seconds=6))
    assert woken is not None and "report quantity" in woken.reason
    assert replan_if_needed(now=now + timedelta(seconds=70)).reason == "the clock moved on"


def test_one_re_plan_at_a_time_and_a_dead_worker_blocks_only_until_its_lease_ends(supervisor):
    wo = make_work_order(actor=supervisor, steps=1)
    now = timezone.now()
    assert replan_if_needed(now=now) is not None
    state = ScheduleState.objects.get()
    assert state.lease_until is None  # released after the plan

    # A worker died while planning: its lease still runs.
    ScheduleState.objects.update(lease_until=now + timedelta(minutes=2))
    services.update_work_order(wo, actor=supervisor, priority="rush")
    assert replan_if_needed(now=now + timedelta(seconds=5)) is None
    assert fresh(wo).projected_end is not None
    after = replan_if_needed(now=now + timedelta(minutes=3))
    assert after is not None and f"{wo.number} update" in after.reason
