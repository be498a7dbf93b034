"""The rollups as events arrive, rebuilt from the event log, and OEE read from them for
machines, work centers, areas and sites."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from mes import services
from mes.calendars.models import Shift, ShiftBreak
from mes.models import Machine, Operation
from mes.performance import rollups
from mes.performance.models import MachineBucket
from mes.performance.oee import COLUMNS
from mes.performance.selectors import figures
from shopfloor.downtime import declare_machine_down, declare_machine_up
from shopfloor.plc.services import StateReading, record_machine_states
from tests.factories import make_routing, make_work_order

pytestmark = pytest.mark.django_db
H = 3600.0
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


def at(hh: int, mm: int = 0, day: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hh, minutes=mm)


@pytest.fixture
def plant(supervisor, operator):
    """One machine on a site working 06:00-14:00 UTC Monday to Friday with a break at
    10:00-10:30, and an order whose only operation starts on it at 06:00 (10 s a part)."""
    routing = make_routing(1)
    step = routing.steps.get()
    step.cycle_seconds, step.setup_seconds = 10, 0
    step.save()
    site = step.work_center.area.site
    site.time_zone = "UTC"
    site.save()
    shift = Shift.objects.create(site=site, code="day", name="Day", start=time(6), end=time(14))
    ShiftBreak.objects.create(shift=shift, start=time(10), end=time(10, 30))
    machine = step.work_center.machines.get()
    Machine.objects.filter(pk=machine.pk).update(state="unknown", state_since=at(0))
    machine.refresh_from_db()
    wo = make_work_order(actor=supervisor, routing=routing, quantity=5000)
    op = Operation.objects.get(work_order=wo)
    services.start_operation(op, operator=operator, machine=machine, at=at(6))
    op.refresh_from_db()
    return machine, op


def plc(machine: Machine, state: str, when: datetime) -> None:
    record_machine_states([StateReading(machine.pk, machine.code, state, when)])


def bucket_sums(machine: Machine) -> dict[str, float]:
    rows = MachineBucket.objects.filter(machine=machine).values_list(*COLUMNS)
    return {c: round(sum(r[i] for r in rows), 6) for i, c in enumerate(COLUMNS)}


def a_day(machine, op, operator) -> None:
    """Running 06-09:00 but for a 1-minute stop at 08:00; down 09:00-09:30; running to
    13:00 through the break; offline 13:00-13:30; running to 14:30 (past the shift)."""
    plc(machine, "running", at(6))
    plc(machine, "idle", at(8))
    plc(machine, "running", at(8, 1))
    plc(machine, "down", at(9))
    plc(machine, "running", at(9, 30))
    services.report_quantity(op, actor=operator, good=900, scrap=10, at=at(9, 40))
    plc(machine, "offline", at(13))
    plc(machine, "running", at(13, 30))
    services.report_quantity(op, actor=operator, good=1000, scrap=0, at=at(13, 40))
    plc(machine, "idle", at(14, 30))


def test_state_changes_and_counts_fill_the_rollups_and_give_the_shifts_oee(plant, operator):
    machine, op = plant
    a_day(machine, op, operator)

    sums = bucket_sums(machine)
    # In working time: running 06-08, 08:01-09, 09:30-10, 10:30-13, 13:30-14 = 7 h less
    # 1 min... and the 30 minutes of the break run through are outside the plan.
    assert sums["run_s"] == 2 * H + 59 * 60 + 0.5 * H + 2.5 * H + 0.5 * H
    assert sums["run_off_s"] == 0.5 * H + 0.5 * H  # the break, and 14:00-14:30
    assert (sums["idle_s"], sums["small_s"], sums["small_n"]) == (60.0, 60.0, 1)
    assert (sums["down_s"], sums["nodata_s"]) == (0.5 * H, 0.5 * H)
    assert (sums["good"], sums["scrap"], sums["ideal_s"]) == (1900, 10, 19_100)
    assert sums["startup_scrap"] == 0  # 3 h 40 min after the start

    (fig,) = figures("machine", code=machine.code, start=at(6), end=at(14), now=at(15))
    k = fig.kpis
    assert k.working_s == 7.5 * H
    assert k.planned_s == 7.5 * H + 0.5 * H  # the break was run through (14:00- is after)
    assert k.run_s == sums["run_s"] + 0.5 * H + 60  # ... and the short stop is run time
    assert k.losses["breakdowns"] == 0.5 * H
    assert k.losses["no_data"] == 0.5 * H
    assert k.losses["small_stops"] == 60.0
    assert k.availability == pytest.approx(k.run_s / k.planned_s)
    assert k.quality == pytest.approx(1900 / 1910)


def test_the_span_a_machine_is_in_now_counts_up_to_now(plant):
    machine, _ = plant
    plc(machine, "running", at(6))
    plc(machine, "down", at(7))

    (fig,) = figures("machine", code=machine.code, start=at(6), end=at(14), now=at(8))

    assert fig.kpis.working_s == 2 * H  # the range ends now
    assert fig.kpis.losses["breakdowns"] == H
    assert fig.kpis.availability == pytest.approx(0.5)


def test_rebuilding_from_the_event_log_gives_the_same_rollups(plant, operator):
    machine, op = plant
    a_day(machine, op, operator)
    plc(machine, "running", at(6, day=1))  # the idle span closes on Tuesday
    incremental = bucket_sums(machine)

    rollups.rebuild(start=at(0), end=at(0, day=2), machine_ids=[machine.pk])

    assert bucket_sums(machine) == incremental


def test_idle_without_work_is_not_planned_and_a_declared_planned_stop_neither(
    plant, operator, supervisor
):
    machine, op = plant
    plc(machine, "running", at(6))
    services.complete_operation(op, actor=operator, at=at(7))
    plc(machine, "idle", at(7))  # nothing to do any more
    plc(machine, "running", at(8))

    (fig,) = figures("machine", code=machine.code, start=at(6), end=at(9), now=at(9))
    assert fig.kpis.planned_s == 2 * H  # 06-09 less the idle hour without work
    assert fig.kpis.availability == 1.0


def test_a_planned_stop_leaves_planned_time_and_failures_count(plant, supervisor):
    from shopfloor.models import DowntimeReason

    machine, _ = plant
    planned = DowntimeReason.objects.filter(planned=True, parent__isnull=False).first()
    unplanned = DowntimeReason.objects.filter(planned=False, parent__isnull=False).first()
    assert planned is not None and unplanned is not None
    plc(machine, "running", at(6))
    declare_machine_down(machine, actor=supervisor, kind="down", code=planned.code, at=at(7))
    declare_machine_up(machine, actor=supervisor, at=at(8))
    plc(machine, "running", at(8))
    declare_machine_down(machine, actor=supervisor, kind="down", code=unplanned.code, at=at(9))
    declare_machine_up(machine, actor=supervisor, at=at(9, 30))
    plc(machine, "running", at(9, 30))

    (fig,) = figures("machine", code=machine.code, start=at(6), end=at(10), now=at(10))

    k = fig.kpis
    assert k.working_s == 4 * H
    assert k.planned_s == 3 * H  # the planned hour is not planned production time
    assert k.losses["breakdowns"] == 0.5 * H
    assert (k.failures, k.mttr_s) == (1, 0.5 * H)
    assert k.mtbf_s == pytest.approx(k.run_s)


def test_startup_scrap_and_groups_of_machines(plant, operator):
    machine, op = plant
    plc(machine, "running", at(6))
    services.report_quantity(op, actor=operator, good=10, scrap=5, at=at(6, 5))
    sums = bucket_sums(machine)
    assert (sums["startup_scrap"], sums["startup_ideal_s"]) == (5, 50)

    wc = machine.work_center
    by_wc = figures("work_center", code=wc.code, start=at(6), end=at(7), now=at(7))
    by_site = figures("site", start=at(6), end=at(7), now=at(7))
    mine = next(f for f in by_site if f.code == wc.area.site.code)
    assert by_wc[0].kpis == mine.kpis
    assert by_wc[0].kpis.losses["startup_rejects"] == 50
    assert by_wc[0].machines == 1


def test_daily_totals_for_the_trend(plant):
    from mes.performance.selectors import daily_totals

    machine, _ = plant
    plc(machine, "running", at(6))
    plc(machine, "down", at(10, 30))

    monday, tuesday = daily_totals([at(0), at(0, day=1)], now=at(12))

    assert tuesday is None  # not begun
    assert monday.working_s == 4 * H + 1.5 * H  # 06:00-10:00 and 10:30-12:00 (now)
    assert monday.losses["breakdowns"] == 1.5 * H


def test_a_rebuild_from_before_a_machines_first_event_adds_no_time(plant, operator):
    machine, op = plant
    a_day(machine, op, operator)
    plc(machine, "running", at(6, day=1))
    incremental = bucket_sums(machine)

    rollups.rebuild(start=at(0, day=-30), end=at(0, day=2), machine_ids=[machine.pk])

    assert bucket_sums(machine) == incremental  # no month of "no data" before it existed
