"""The live schedule plans in working time: the pure engine with calendars (a worked
example across a weekend, then random plants on random calendars), and the scheduler reading
the sites' calendars from the database."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mes.calendars.models import CalendarException, Shift
from mes.calendars.working_time import Calendars, CalendarSpec, ShiftSpec, WorkingTime
from mes.models import Operation, WorkOrder
from mes.scheduling.engine import MachineIn, OperationIn, OrderIn, plan
from mes.scheduling.services import replan, replan_if_needed
from tests.calendars.test_working_time import calendars
from tests.factories import make_routing, make_work_order
from tests.mes.test_scheduling_engine import plants

BERLIN = ZoneInfo("Europe/Berlin")
MON_FRI = frozenset(range(5))


def local(y, m, d, hh=0, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BERLIN)


def two_shifts() -> WorkingTime:
    return WorkingTime(
        CalendarSpec(
            "Europe/Berlin",
            (
                ShiftSpec("early", MON_FRI, time(6), time(14), ((time(10), time(10, 30)),)),
                ShiftSpec("late", MON_FRI, time(14), time(22), ((time(18), time(18, 30)),)),
            ),
        )
    )


def step(id: int, wc: int, minutes: int, status: str = "pending") -> OperationIn:
    return OperationIn(
        id=id,
        sequence=id * 10,
        work_center_id=wc,
        status=status,
        machine_id=None,
        setup_seconds=Decimal(0),
        cycle_seconds=Decimal(60),
        remaining_quantity=Decimal(minutes),
    )


# --- a worked example --------------------------------------------------------------------------


def test_a_projection_across_the_weekend():
    """Friday 27 November 2026, 20:00 in Berlin. An order of two steps, three and four hours,
    on two work centers working two shifts Monday to Friday (06-22, a break 10:00-10:30 in
    the early shift), due Saturday noon.

    Step 10 runs 20:00-22:00 on Friday, stops for the weekend and ends at Monday 07:00
    after the hour left. Step 20 starts then, runs 07:00-10:00, stops for the break and
    ends at 11:30. The order is late. Around the clock, it would end on Saturday at 03:00,
    on time."""
    now = local(2026, 11, 27, 20)
    wo = OrderIn(1, "WO-1", False, local(2026, 11, 28, 12), [step(1, 1, 180), step(2, 2, 240)])
    machines = [MachineIn(1, 1), MachineIn(2, 2)]
    shifts = two_shifts()

    result = plan([wo], machines, now=now, calendars=Calendars({1: shifts, 2: shifts}))

    first, second = result.operations[1], result.operations[2]
    assert (first.start, first.end) == (now, local(2026, 11, 30, 7))
    assert (second.start, second.end) == (local(2026, 11, 30, 7), local(2026, 11, 30, 11, 30))
    assert result.projected_end[1] == local(2026, 11, 30, 11, 30)
    assert result.at_risk(wo)

    around_the_clock = plan([wo], machines, now=now)
    assert around_the_clock.projected_end[1] == local(2026, 11, 28, 3)
    assert not around_the_clock.at_risk(wo)


def test_work_waits_for_the_shift_and_a_machine_down_until_monday():
    """Saturday: nothing starts before Monday 06:00; a machine down and expected back on
    Monday 08:00 takes its work from then."""
    now = local(2026, 11, 28, 9)
    shifts = two_shifts()
    orders = [OrderIn(1, "WO-1", False, now, [step(1, 1, 60)])]
    result = plan(
        orders,
        [MachineIn(1, 1, "down", back_at=local(2026, 11, 30, 8))],
        now=now,
        calendars=Calendars({1: shifts}),
    )
    assert result.operations[1].start == local(2026, 11, 30, 8)
    assert result.operations[1].end == local(2026, 11, 30, 9)

    idle = plan(orders, [MachineIn(1, 1)], now=now, calendars=Calendars({1: shifts}))
    assert (idle.operations[1].start, idle.operations[1].end) == (
        local(2026, 11, 30, 6),
        local(2026, 11, 30, 7),
    )


# --- properties --------------------------------------------------------------------------------


def worked(cal: WorkingTime, start: datetime, end: datetime) -> timedelta:
    return sum((b - a for a, b in cal.intervals(start, end)), timedelta(0))


@settings(max_examples=120, deadline=None, database=None)
@given(plants(), st.lists(calendars(), min_size=1, max_size=3), st.data())
def test_no_work_is_ever_planned_in_non_working_time(plant, specs, data):
    orders, machines, allowance = plant
    now = specs[0][1]
    work_centers = sorted(
        {m.work_center_id for m in machines}
        | {o.work_center_id for wo in orders for o in wo.operations}
    )
    by_wc = {wc: WorkingTime(data.draw(st.sampled_from(specs))[0]) for wc in work_centers}
    result = plan(orders, machines, now=now, down_allowance=allowance, calendars=Calendars(by_wc))

    lanes: dict[tuple, list] = defaultdict(list)
    for wo in orders:
        steps = [o for o in wo.operations if o.open]
        for o in steps:
            p = result.operations[o.id]
            cal = by_wc[o.work_center_id]
            # It starts at a working instant, and its standard time is exactly the working
            # time between its start and its end: it never counts a break, night or holiday.
            assert p.start >= now
            assert cal.is_working(p.start)
            assert worked(cal, p.start, p.end) == timedelta(seconds=float(o.seconds()))
            if o.seconds():
                assert cal.is_working(p.end - timedelta(microseconds=1))
            key = ("machine", p.machine_id) if p.machine_id else ("manual", o.work_center_id)
            lanes[key].append(p)
        for before, after in pairwise(result.operations[o.id] for o in steps):
            assert after.start >= before.end
    for booked in lanes.values():
        booked.sort(key=lambda p: (p.start, p.end))
        for before, after in pairwise(booked):
            assert after.start >= before.end


# --- the scheduler with the sites' calendars ---------------------------------------------------


def day_shift(site, **fields) -> Shift:
    values = {"code": "day", "name": "Day", "start": time(6), "end": time(14)}
    return Shift.objects.create(site=site, **{**values, **fields})


@pytest.mark.django_db
def test_the_live_schedule_plans_in_the_sites_shifts_and_follows_a_calendar_change(supervisor):
    routing = make_routing(1)
    site = routing.steps.get().work_center.area.site  # Europe/Berlin
    day_shift(site)  # Monday to Friday 06-14
    wo = make_work_order(actor=supervisor, routing=routing, quantity=100)  # 5 min + 1250 s
    saturday = local(2026, 11, 28, 9).astimezone(UTC)

    replan(now=saturday)

    op = Operation.objects.get(work_order=wo)
    assert op.planned_start == local(2026, 11, 30, 6)
    assert op.planned_end == local(2026, 11, 30, 6) + timedelta(seconds=300 + 1250)
    assert WorkOrder.objects.get(pk=wo.pk).projected_end == op.planned_end

    assert replan_if_needed(now=saturday) is not None  # first plan of the worker
    assert replan_if_needed(now=saturday + timedelta(seconds=1)) is None
    CalendarException.objects.create(
        site=site, day=date(2026, 11, 28), kind="extra", start=time(8), end=time(12), name="Extra"
    )
    summary = replan_if_needed(now=saturday + timedelta(seconds=2))

    assert summary is not None and "shift calendar changed" in summary.reason
    op.refresh_from_db()
    assert op.planned_start == saturday + timedelta(seconds=2)
    assert replan_if_needed(now=saturday + timedelta(seconds=3)) is None
