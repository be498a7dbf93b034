"""OEE and its losses (:mod:`mes.performance.oee`), pure: hand-made days whose answers are
worked out in the test, then the accounting identity on random ones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mes.calendars.working_time import CalendarSpec, ExceptionSpec, ShiftSpec, WorkingTime
from mes.performance import oee

H = 3600.0
MONDAY = date(2026, 11, 30)


def utc(hh: int, mm: int = 0, day: date = MONDAY) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=UTC)


def day_shift(*exceptions: ExceptionSpec) -> WorkingTime:
    """06:00-14:00 UTC Monday to Friday, a break 10:00-10:30: 7.5 h a day."""
    shift = ShiftSpec("day", frozenset(range(5)), time(6), time(14), ((time(10), time(10, 30)),))
    return WorkingTime(CalendarSpec("UTC", (shift,), exceptions))


def totals(working: WorkingTime, spans, *counts: oee.Totals) -> oee.Totals:
    """Spans ``(state, start, end[, work])`` and counts, summed as the rollups would be."""
    result = oee.Totals()
    for state, start, end, *work in spans:
        for row in oee.spread(state, start, end, working, work=work[0] if work else True).values():
            result = result + row
    return oee.total([result, *counts])


def approx(value: float | None) -> object:
    return pytest.approx(value, abs=1e-9)


def test_a_shift_with_a_break_a_breakdown_and_scrap():
    """Running 06-12 (through the 10:00 break), down 12-13, running 13-14; 2,400 good and
    100 scrap at 10 s ideal cycle time.

    Working time 7.5 h; the half hour run in the break is production outside the plan, so
    planned production time is 8 h (28,800 s). Run time 7 h; availability 7/8. Ideal time
    25,000 s: performance 25,000/25,200; quality 2,400/2,500; OEE = 24,000/28,800."""
    cal = day_shift()
    t = totals(
        cal,
        [("running", utc(6), utc(12)), ("down", utc(12), utc(13)), ("running", utc(13), utc(14))],
        oee.count_row(2400, 100, 10),
    )
    assert (t.run_s, t.run_off_s, t.down_s) == (6.5 * H, 0.5 * H, H)

    k = oee.kpis(t, working_s=cal.seconds_between(utc(0), utc(0) + timedelta(days=1)))

    assert (k.working_s, k.planned_s, k.run_s) == (7.5 * H, 8 * H, 7 * H)
    assert k.availability == approx(7 / 8)
    assert k.performance == approx(25_000 / 25_200)
    assert k.quality == approx(0.96)
    assert k.oee == approx(24_000 / 28_800)
    assert k.losses == {
        "breakdowns": H,
        "setup": 0.0,
        "small_stops": 0.0,
        "reduced_speed": approx(200.0),
        "startup_rejects": 0.0,
        "production_rejects": 1000.0,
        "no_data": 0.0,
    }
    assert k.planned_s - sum(k.losses.values()) == approx(24_000)


def test_a_stop_across_the_end_of_the_shift_counts_only_inside_it():
    cal = day_shift()
    t = totals(cal, [("running", utc(6), utc(13, 30)), ("down", utc(13, 30), utc(15))])
    k = oee.kpis(t, working_s=7.5 * H)
    assert t.down_s == 0.5 * H  # 13:30-14:00; after 14:00 nobody planned to work
    assert k.losses["breakdowns"] == 0.5 * H
    # Running 06:00-13:30 with the break: 7 h planned and 30 minutes run outside the plan.
    assert (t.run_s, t.run_off_s, k.planned_s) == (7 * H, 0.5 * H, 8 * H)
    assert k.availability == approx(7.5 / 8)


def test_an_offline_period_is_a_loss_of_its_own():
    cal = day_shift()
    t = totals(
        cal,
        [
            ("running", utc(6), utc(8)),
            ("offline", utc(8), utc(10)),
            ("running", utc(10), utc(14)),
        ],
        oee.count_row(1000, 0, 20),
    )
    k = oee.kpis(t, working_s=7.5 * H)
    assert k.losses["no_data"] == 2 * H
    assert k.planned_s == 8 * H  # the break was run through
    assert k.availability == approx(6 / 8)
    assert k.performance == approx(20_000 / (6 * H))


def test_setup_small_stops_startup_rejects_and_planned_stops():
    cal = day_shift()
    spans = [
        ("setup", utc(6), utc(7)),
        ("running", utc(7), utc(8)),
        ("idle", utc(8), utc(8, 1)),  # a short stop
        ("running", utc(8, 1), utc(9)),
        ("down", utc(9), utc(10)),  # a planned maintenance hour
        ("idle", utc(10, 30), utc(11), False),  # nothing to do
        ("running", utc(11), utc(14)),
    ]
    t = totals(
        cal,
        spans,
        *oee.small_stop(utc(8), utc(8, 1), cal).values(),
        oee.count_row(10, 5, 30, startup=True),
        oee.count_row(400, 5, 30),
    )
    k = oee.kpis(t, working_s=7.5 * H, stops=oee.Stops(planned_s=H))

    assert (t.small_s, t.small_n, t.nowork_s) == (60.0, 1, 0.5 * H)
    # 7.5 h less the planned hour and the idle half hour without work.
    assert k.planned_s == 6 * H
    assert k.run_s == 5 * H  # 07-08, 08:00-08:01 (short stop), 08:01-09, 11-14
    assert k.setup_ratio == approx(1 / 6)
    assert k.losses["setup"] == H
    assert k.losses["small_stops"] == 60.0
    assert k.losses["breakdowns"] == 0.0
    assert k.losses["startup_rejects"] == 150.0
    assert k.losses["production_rejects"] == 150.0
    assert k.losses["reduced_speed"] == approx(5 * H - 60 - 420 * 30)
    assert k.planned_s - sum(k.losses.values()) == approx(410 * 30)


def test_a_machine_that_made_nothing_and_a_shift_with_no_planned_time():
    cal = day_shift()
    idle = oee.kpis(totals(cal, [("down", utc(6), utc(14))]), working_s=7.5 * H)
    assert (idle.availability, idle.performance, idle.quality, idle.oee) == (0.0, None, None, 0.0)
    assert idle.losses["breakdowns"] == 7.5 * H

    holiday = day_shift(ExceptionSpec(MONDAY, "closed"))
    empty = oee.kpis(totals(holiday, [("idle", utc(6), utc(14))]), working_s=0.0)
    assert (empty.planned_s, empty.availability, empty.performance, empty.oee) == (
        0.0,
        None,
        None,
        None,
    )
    assert empty.mtbf_s is None and empty.mttr_s is None and empty.setup_ratio is None


def test_a_day_with_the_change_back_from_summer_time_has_25_hours():
    berlin = ZoneInfo("Europe/Berlin")
    cal = WorkingTime(
        CalendarSpec("Europe/Berlin", (ShiftSpec("all", frozenset(range(7)), time(0), time(0)),))
    )
    start = datetime(2026, 10, 25, tzinfo=berlin)
    end = datetime(2026, 10, 26, tzinfo=berlin)
    t = totals(
        cal, [("running", start, end - timedelta(hours=1)), ("down", end - timedelta(hours=1), end)]
    )
    k = oee.kpis(t, working_s=cal.seconds_between(start, end))
    assert k.working_s == 25 * H
    assert k.availability == approx(24 / 25)
    assert len(oee.spread("running", start, end, cal)) == 100  # quarter hours that day


def test_mtbf_and_mttr_from_the_failures():
    t = oee.Totals(run_s=10 * H, down_s=H)
    k = oee.kpis(t, working_s=11 * H, stops=oee.Stops(failures=4, failure_s=H))
    assert (k.mtbf_s, k.mttr_s, k.failures) == (2.5 * H, 900.0, 4)


def test_ratios_are_capped_at_one():
    t = oee.total([oee.Totals(run_s=H), oee.count_row(100, 0, 60)])  # 6,000 s ideal in 3,600
    k = oee.kpis(t, working_s=H)
    assert k.performance == 1.0 and k.oee == 1.0


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["running", "idle", "down", "setup", "offline", "unknown"]),
            st.integers(1, 240),
            st.booleans(),
        ),
        max_size=30,
    ),
    st.integers(0, 5000),
    st.integers(0, 500),
    st.decimals(1, 60, places=1),
)
def test_the_losses_and_the_good_units_ideal_time_make_up_planned_time(spans, good, scrap, cycle):
    cal = day_shift()
    cursor, rows = utc(5), []
    for state, minutes, work in spans:
        end = cursor + timedelta(minutes=minutes)
        rows.append((state, cursor, end, work))
        cursor = end
    t = totals(cal, rows, oee.count_row(good, scrap, float(cycle)))
    # Every instant is in some state (unknown before the first event): the spans cover the
    # range whose working time is asked for.
    k = oee.kpis(t, working_s=cal.seconds_between(utc(5), cursor))
    for value in (k.availability, k.performance, k.quality, k.oee):
        assert value is None or 0.0 <= value <= 1.0
    if t.run_s + t.run_off_s >= t.ideal_s:  # no speed above standard
        good_time = t.ideal_s - t.scrap_ideal_s
        assert k.planned_s - sum(k.losses.values()) == pytest.approx(good_time, abs=1e-6)
