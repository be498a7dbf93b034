"""Working time from a shift calendar (:mod:`mes.calendars.working_time`): pure, no
database. Worked examples whose answers are counted by hand, then properties on random
calendars."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mes.calendars.working_time import (
    CLOSED,
    EXTRA,
    HORIZON_DAYS,
    CalendarSpec,
    ExceptionSpec,
    ShiftSpec,
    WorkingTime,
)

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = frozenset(range(5))
H = 3600


def local(y, m, d, hh=0, mm=0, zone=BERLIN) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=zone)


def two_shifts(**extra) -> CalendarSpec:
    """Early 06-14 and late 14-22, Monday to Friday, half an hour's break each."""
    return CalendarSpec(
        time_zone="Europe/Berlin",
        shifts=(
            ShiftSpec("early", WEEKDAYS, time(6), time(14), ((time(10), time(10, 30)),)),
            ShiftSpec("late", WEEKDAYS, time(14), time(22), ((time(18), time(18, 30)),)),
        ),
        **extra,
    )


# --- worked examples ---------------------------------------------------------------------------


def test_a_weekday_of_two_shifts_has_fifteen_hours_in_three_spans():
    cal = WorkingTime(two_shifts())
    monday = local(2026, 11, 23)  # a Monday, UTC+1

    assert cal.intervals(monday, monday + timedelta(days=1)) == [
        (datetime(2026, 11, 23, 5, tzinfo=UTC), datetime(2026, 11, 23, 9, tzinfo=UTC)),
        (datetime(2026, 11, 23, 9, 30, tzinfo=UTC), datetime(2026, 11, 23, 17, tzinfo=UTC)),
        (datetime(2026, 11, 23, 17, 30, tzinfo=UTC), datetime(2026, 11, 23, 21, tzinfo=UTC)),
    ]
    assert cal.seconds_between(monday, monday + timedelta(days=1)) == 15 * H
    # A week: five such days, nothing on the weekend.
    assert cal.seconds_between(monday, monday + timedelta(days=7)) == 75 * H


def test_work_stops_over_the_weekend_and_goes_on_on_monday():
    cal = WorkingTime(two_shifts())
    friday_evening = local(2026, 11, 27, 21)

    assert cal.next_working(local(2026, 11, 28, 12)) == local(2026, 11, 30, 6)
    assert not cal.is_working(local(2026, 11, 28, 12))
    assert cal.is_working(friday_evening)
    # One hour left on Friday (21-22), the second on Monday morning.
    assert cal.add(friday_evening, 2 * H) == local(2026, 11, 30, 7)
    # Work over the break: 09:45 plus an hour is 11:15.
    assert cal.add(local(2026, 11, 30, 9, 45), H) == local(2026, 11, 30, 11, 15)
    # Starting in a break starts after it.
    assert cal.add(local(2026, 11, 30, 10, 10), 0) == local(2026, 11, 30, 10, 30)


def night_shift(days=frozenset(range(7))) -> CalendarSpec:
    return CalendarSpec(
        time_zone="Europe/Berlin",
        shifts=(ShiftSpec("night", days, time(22), time(6), ((time(2), time(2, 30)),)),),
    )


def test_a_night_shift_is_seven_hours_long_into_summer_time_and_nine_out_of_it():
    cal = WorkingTime(night_shift())
    # Summer time begins on Sunday 29 March 2026 at 02:00 (clocks go to 03:00); it ends on
    # Sunday 25 October 2026 at 03:00 (clocks go back to 02:00).
    spring = cal.shifts(local(2026, 3, 28, 23), local(2026, 3, 28, 23, 1))[0]
    autumn = cal.shifts(local(2026, 10, 24, 23), local(2026, 10, 24, 23, 1))[0]
    normal = cal.shifts(local(2026, 11, 7, 23), local(2026, 11, 7, 23, 1))[0]

    assert (spring.end - spring.start).total_seconds() == 7 * H
    assert (autumn.end - autumn.start).total_seconds() == 9 * H
    assert (normal.end - normal.start).total_seconds() == 8 * H
    # The break at 02:00-02:30 does not exist in the spring night (02:00 is 03:00): read
    # with the offset before the change it is 03:00-03:30 summer time.
    assert spring.breaks == ((local(2026, 3, 29, 3), local(2026, 3, 29, 3, 30)),)
    assert spring.planned_seconds == 6.5 * H
    # In the autumn night the break is at the first 02:00 (summer time).
    assert autumn.breaks[0][0] == datetime(2026, 10, 25, 0, tzinfo=UTC)
    assert autumn.planned_seconds == 8.5 * H
    assert cal.seconds_between(local(2026, 10, 24, 12), local(2026, 10, 25, 12)) == 8.5 * H


def test_a_holiday_closes_its_day_from_midnight_to_midnight():
    christmas = ExceptionSpec(date(2026, 12, 25), CLOSED, name="Christmas")  # a Friday
    cal = WorkingTime(night_shift(days=WEEKDAYS))
    # Thursday 24th and Friday 25th: the end of Wednesday's night (00-06 less the break,
    # 5.5 h), Thursday's night (7.5 h), Friday's night to midnight (2 h).
    assert cal.seconds_between(local(2026, 12, 24), local(2026, 12, 26)) == 15 * H
    cal = WorkingTime(
        CalendarSpec("Europe/Berlin", night_shift(days=WEEKDAYS).shifts, (christmas,))
    )
    # The holiday takes Thursday's night after midnight and Friday's night before it.
    assert cal.seconds_between(local(2026, 12, 24), local(2026, 12, 26)) == 7.5 * H
    assert cal.next_working(local(2026, 12, 25, 1)) == local(2026, 12, 26)


def test_a_closed_window_and_an_extra_saturday_shift():
    shutdown = ExceptionSpec(date(2026, 12, 2), CLOSED, time(12), time(16), "Power works")
    saturday = ExceptionSpec(date(2026, 12, 5), EXTRA, time(8), time(12), "Extra shift")
    cal = WorkingTime(two_shifts(exceptions=(shutdown, saturday)))

    # Wednesday: 15 h less 12:00-16:00 (2 h of the early shift, 2 h of the late one).
    assert cal.seconds_between(local(2026, 12, 2), local(2026, 12, 3)) == 11 * H
    assert cal.next_working(local(2026, 12, 2, 13)) == local(2026, 12, 2, 16)
    assert cal.seconds_between(local(2026, 12, 5), local(2026, 12, 6)) == 4 * H
    assert cal.add(local(2026, 12, 4, 21), 3 * H) == local(2026, 12, 5, 10)


def test_extra_time_wins_over_a_closure_on_the_same_day():
    day = date(2026, 12, 24)
    cal = WorkingTime(
        two_shifts(
            exceptions=(
                ExceptionSpec(day, CLOSED, name="Christmas Eve"),
                ExceptionSpec(day, EXTRA, time(6), time(10), "Rush morning"),
            )
        )
    )
    assert cal.seconds_between(local(2026, 12, 24), local(2026, 12, 25)) == 4 * H


def test_a_calendar_without_shifts_runs_around_the_clock():
    cal = WorkingTime(CalendarSpec("Europe/Berlin"))
    start = local(2026, 12, 5, 3)
    assert cal.next_working(start) == start
    assert cal.add(start, 50 * H) == start + timedelta(hours=50)
    assert cal.seconds_between(start, start + timedelta(days=2)) == 48 * H
    # ...but a closure still closes.
    closed = WorkingTime(CalendarSpec("UTC", (), (ExceptionSpec(date(2026, 12, 6), CLOSED),)))
    assert closed.seconds_between(local(2026, 12, 6), local(2026, 12, 8)) == 24 * H
    assert closed.seconds_between(local(2026, 12, 5, zone=UTC), local(2026, 12, 8, zone=UTC)) == (
        48 * H
    )


def test_shift_valid_dates_and_the_shift_at_an_instant():
    summer = ShiftSpec(
        "summer", WEEKDAYS, time(5), time(13), valid_from=date(2026, 6, 1), name="Summer"
    )
    winter = ShiftSpec(
        "winter", WEEKDAYS, time(7), time(15), valid_until=date(2026, 5, 31), name="Winter"
    )
    cal = WorkingTime(CalendarSpec("Europe/Berlin", (summer, winter)))
    assert cal.shift_at(local(2026, 5, 29, 14)).code == "winter"  # a Friday
    assert cal.shift_at(local(2026, 6, 1, 6)).code == "summer"  # a Monday
    assert cal.shift_at(local(2026, 6, 1, 14)) is None
    early = cal.shift_at(local(2026, 6, 2, 12))
    assert (early.start, early.end, early.planned_seconds) == (
        local(2026, 6, 2, 5),
        local(2026, 6, 2, 13),
        8 * H,
    )


def test_a_calendar_with_no_more_working_time_does_not_loop_forever():
    ended = ShiftSpec("old", WEEKDAYS, time(6), time(14), valid_until=date(2026, 1, 31))
    cal = WorkingTime(CalendarSpec("UTC", (ended,)))
    # Nothing for three years from June: from June on it runs around the clock.
    start = datetime(2026, 6, 1, tzinfo=UTC)
    assert cal.next_working(start) == start
    assert cal.add(start, H) == start + timedelta(hours=1)
    # From January, work stops at the end of January and goes on after the horizon.
    january = datetime(2026, 1, 30, 13, tzinfo=UTC)
    assert cal.add(january, H) == datetime(2026, 1, 30, 14, tzinfo=UTC)
    assert cal.add(january, 2 * H) - january >= timedelta(days=HORIZON_DAYS - 40)


# --- properties on random calendars ------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
QUARTERS = st.integers(0, 95).map(lambda q: time(q // 4, q % 4 * 15))


@st.composite
def shifts(draw) -> ShiftSpec:
    start = draw(QUARTERS)
    hours = draw(st.integers(1, 24 * 4)) / 4  # a quarter of an hour to a day
    end_dt = datetime.combine(date(2000, 1, 1), start) + timedelta(hours=hours)
    end = end_dt.time()
    breaks = []
    if hours >= 2 and draw(st.booleans()):
        offset = draw(st.integers(1, int(hours * 4) - 2)) / 4
        begin = datetime.combine(date(2000, 1, 1), start) + timedelta(hours=offset)
        breaks.append((begin.time(), (begin + timedelta(minutes=15)).time()))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return ShiftSpec(f"s{draw(st.integers(0, 99))}", days, start, end, tuple(breaks))


@st.composite
def calendars(draw) -> tuple[CalendarSpec, datetime]:
    zone = draw(st.sampled_from(ZONES))
    anchor = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 525_600)))
    exceptions = []
    for _ in range(draw(st.integers(0, 4))):
        day = anchor.date() + timedelta(days=draw(st.integers(-1, 20)))
        if draw(st.booleans()):
            exceptions.append(ExceptionSpec(day, CLOSED))
        else:
            kind = draw(st.sampled_from([CLOSED, EXTRA]))
            exceptions.append(ExceptionSpec(day, kind, draw(QUARTERS), draw(QUARTERS)))
    spec = CalendarSpec(zone, tuple(draw(st.lists(shifts(), max_size=3))), tuple(exceptions))
    return spec, anchor


def working(cal: WorkingTime, start: datetime, end: datetime) -> timedelta:
    return sum((b - a for a, b in cal.intervals(start, end)), timedelta(0))


@settings(max_examples=150, deadline=None, database=None)
@given(calendars(), st.integers(0, 7 * 24 * 3600), st.integers(0, 100 * 3600))
def test_adding_work_then_counting_the_working_time_gives_it_back(calendar, offset, seconds):
    spec, anchor = calendar
    cal = WorkingTime(spec)
    start = anchor + timedelta(seconds=offset)

    begin = cal.next_working(start)
    end = cal.add(start, seconds)

    assert begin >= start
    assert cal.is_working(begin)
    assert working(cal, start, begin) == timedelta(0)  # nothing skipped
    assert working(cal, start, end) == timedelta(seconds=seconds)
    assert end >= begin
    if seconds:  # the work ends at the instant it is done, not later in a pause
        assert working(cal, start, end - timedelta(microseconds=1)) < timedelta(seconds=seconds)
    # Intervals are sorted, disjoint and inside the range asked for.
    spans = cal.intervals(start, start + timedelta(days=10))
    for a, b in spans:
        assert start <= a < b <= start + timedelta(days=10)
    for (_, b1), (a2, _) in itertools.pairwise(spans):
        assert b1 < a2


@settings(max_examples=60, deadline=None, database=None)
@given(calendars())
def test_planned_time_of_the_shifts_is_the_working_time_when_nothing_else_changes_it(calendar):
    spec, anchor = calendar
    assume(spec.shifts)  # without shifts it runs around the clock
    spec = CalendarSpec(spec.time_zone, spec.shifts)  # no exceptions
    cal = WorkingTime(spec)
    start = anchor
    end = anchor + timedelta(days=3)
    instances = cal.shifts(start, end)
    # Shifts may overlap one another: the working time is their union, never more than
    # the sum of what each plans.
    total = sum(
        max(0.0, (min(s.end, end) - max(s.start, start)).total_seconds())
        - sum(max(0.0, (min(b, end) - max(a, start)).total_seconds()) for a, b in s.breaks)
        for s in instances
    )
    assert cal.seconds_between(start, end) <= total + 1e-6
    if len(spec.shifts) <= 1:
        assert abs(cal.seconds_between(start, end) - total) < 1e-6


def test_gaps_are_the_rest_of_the_range():
    cal = WorkingTime(two_shifts())
    monday = local(2026, 11, 23)
    assert cal.gaps(monday, monday + timedelta(days=1)) == [
        (monday, local(2026, 11, 23, 6)),
        (local(2026, 11, 23, 10), local(2026, 11, 23, 10, 30)),
        (local(2026, 11, 23, 18), local(2026, 11, 23, 18, 30)),
        (local(2026, 11, 23, 22), monday + timedelta(days=1)),
    ]
