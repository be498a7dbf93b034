"""Working time from a site's shift calendar, as plain data in and out (no ORM).

A calendar is the plant's weekly shift pattern, in the plant's time zone:

- **Shifts** run on chosen weekdays from a start to an end time of day (an end at or before
  the start is on the next day: a night shift 22:00-06:00 belongs to the day it starts on),
  optionally only between two dates (a summer pattern), minus their **breaks**.
- **Exceptions** on a date: *closed* takes working time away (a holiday midnight to
  midnight, or a window such as a shutdown afternoon); *extra* adds a window of working
  time (an extra Saturday shift). Extra time wins over a closure on the same date.
- A calendar without shifts runs **around the clock** (closures and extras still apply).

Local times become instants through the zone's rules, so a night shift across the
change to summer time lasts seven hours and across the change back nine; a time of day that
does not exist that night (02:30 in the spring gap) is read with the offset before the
change, as ``zoneinfo`` does.

:class:`WorkingTime` answers what planning and performance need: the working intervals in
a range, planned production time (seconds of working time), the next working instant, the
instant a given amount of work is done, and the shift instances in a range. It expands the
pattern lazily in blocks of days and keeps them. A calendar that offers no working time for
:data:`HORIZON_DAYS` after an instant runs around the clock from that instant, so a planning
step always ends.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

CLOSED, EXTRA = "closed", "extra"
BLOCK_DAYS = 32
HORIZON_DAYS = 1100  # about three years
DAY = timedelta(days=1)
EPOCH = date(2000, 1, 3)  # a Monday: blocks start on fixed dates

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class ShiftSpec:
    code: str
    weekdays: frozenset[int]  # 0 = Monday ... 6 = Sunday
    start: time
    end: time  # at or before ``start``: the next day
    breaks: tuple[tuple[time, time], ...] = ()
    name: str = ""
    valid_from: date | None = None
    valid_until: date | None = None

    def runs_on(self, day: date) -> bool:
        return (
            day.weekday() in self.weekdays
            and (self.valid_from is None or day >= self.valid_from)
            and (self.valid_until is None or day <= self.valid_until)
        )


@dataclass(frozen=True)
class ExceptionSpec:
    day: date
    kind: str  # CLOSED or EXTRA
    start: time | None = None  # None with ``end`` None: the whole day
    end: time | None = None
    name: str = ""


@dataclass(frozen=True)
class CalendarSpec:
    time_zone: str = "UTC"
    shifts: tuple[ShiftSpec, ...] = ()
    exceptions: tuple[ExceptionSpec, ...] = ()

    @property
    def around_the_clock(self) -> bool:
        return not self.shifts and not self.exceptions


AROUND_THE_CLOCK = CalendarSpec()


@dataclass(frozen=True)
class ShiftInstance:
    """One occurrence of a shift: its day (the date it starts on), its span and breaks."""

    code: str
    name: str
    day: date
    start: datetime
    end: datetime
    breaks: tuple[Interval, ...] = ()

    @property
    def planned_seconds(self) -> float:
        span = (self.end - self.start).total_seconds()
        return span - sum((b - a).total_seconds() for a, b in self.breaks)


def local_window(zone: ZoneInfo, day: date, start: time, end: time) -> Interval:
    """The instants of ``start`` to ``end`` on ``day`` in ``zone`` (an end at or before the
    start is on the next day), in UTC."""
    begin = datetime.combine(day, start, tzinfo=zone)
    finish = datetime.combine(day + DAY if end <= start else day, end, tzinfo=zone)
    return begin.astimezone(UTC), finish.astimezone(UTC)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, overlapping or touching intervals joined, empty ones dropped."""
    result: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if result and start <= result[-1][1]:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result


def subtract(intervals: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """``intervals`` without ``holes`` (both merged and sorted)."""
    result: list[Interval] = []
    for start, end in intervals:
        cursor = start
        for hole_start, hole_end in holes:
            if hole_end <= cursor or hole_start >= end:
                continue
            if hole_start > cursor:
                result.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result


def shift_instance(shift: ShiftSpec, day: date, zone: ZoneInfo) -> ShiftInstance:
    start, end = local_window(zone, day, shift.start, shift.end)
    breaks = []
    for break_start, break_end in shift.breaks:
        # A break before the shift's start time of day is after midnight (night shifts).
        on = day if break_start >= shift.start else day + DAY
        a, b = local_window(zone, on, break_start, break_end)
        a, b = max(a, start), min(b, end)
        if b > a:
            breaks.append((a, b))
    return ShiftInstance(shift.code, shift.name, day, start, end, tuple(merge(breaks)))


class WorkingTime:
    """The working time of one calendar (see the module's text). Instants in and out are
    timezone-aware; results are in UTC."""

    def __init__(self, spec: CalendarSpec = AROUND_THE_CLOCK) -> None:
        self.spec = spec
        self.zone = ZoneInfo(spec.time_zone)
        self.always = spec.around_the_clock
        self._exceptions: dict[date, list[ExceptionSpec]] = {}
        for exception in spec.exceptions:
            self._exceptions.setdefault(exception.day, []).append(exception)
        self._blocks: dict[int, list[Interval]] = {}
        self._starts: dict[int, list[datetime]] = {}

    # --- Expansion ---------------------------------------------------------------------------

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)

    def _block_of(self, at: datetime) -> int:
        return (at.astimezone(self.zone).date() - EPOCH).days // BLOCK_DAYS

    def _block_range(self, block: int) -> tuple[date, date]:
        first = EPOCH + timedelta(days=block * BLOCK_DAYS)
        return first, first + timedelta(days=BLOCK_DAYS)

    def shift_instances(self, first: date, last: date) -> list[ShiftInstance]:
        """Shift instances starting on the days ``first`` to ``last`` (inclusive)."""
        result = []
        day = first
        while day <= last:
            for shift in self.spec.shifts:
                if shift.runs_on(day):
                    result.append(shift_instance(shift, day, self.zone))
            day += DAY
        result.sort(key=lambda s: (s.start, s.code))
        return result

    def _windows(self, first: date, last: date, kind: str) -> list[Interval]:
        windows = []
        day = first
        while day <= last:
            for exception in self._exceptions.get(day, ()):
                if exception.kind != kind:
                    continue
                if exception.start is None or exception.end is None:
                    windows.append((self._midnight(day), self._midnight(day + DAY)))
                else:
                    windows.append(local_window(self.zone, day, exception.start, exception.end))
            day += DAY
        return merge(windows)

    def _block(self, block: int) -> list[Interval]:
        cached = self._blocks.get(block)
        if cached is not None:
            return cached
        first, after = self._block_range(block)
        lo, hi = self._midnight(first), self._midnight(after)
        # A night shift of the day before reaches into the block; a closure or extra window
        # of the day before or after may too.
        if self.spec.shifts:
            base = []
            for instance in self.shift_instances(first - DAY, after - DAY):
                base.extend(subtract([(instance.start, instance.end)], instance.breaks))
            base = merge(base)
        else:
            base = [(lo, hi)]
        base = subtract(base, self._windows(first - DAY, after, CLOSED))
        base = merge([*base, *self._windows(first - DAY, after, EXTRA)])
        clipped = [(max(a, lo), min(b, hi)) for a, b in base if b > lo and a < hi]
        self._blocks[block] = clipped
        self._starts[block] = [a for a, _ in clipped]
        return clipped

    def _intervals_from(self, at: datetime) -> Iterable[Interval]:
        """Working intervals that end after ``at``, in time order (clipped at block edges,
        so two may touch). Without any within the horizon, it runs around the clock from
        ``at``; after the last one found within it, from the horizon's end."""
        block = self._block_of(at)
        limit = block + HORIZON_DAYS // BLOCK_DAYS + 1
        found = False
        while block <= limit:
            intervals = self._block(block)
            index = bisect.bisect_right(self._starts[block], at) - 1
            for interval in intervals[max(index, 0) :]:
                if interval[1] > at:
                    found = True
                    yield interval
            block += 1
        after = self._midnight(self._block_range(limit)[1]) if found else at
        yield (max(at, after), datetime.max.replace(tzinfo=UTC))

    # --- Questions ---------------------------------------------------------------------------

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """The working intervals within ``start`` to ``end``, joined where they touch."""
        if end <= start:
            return []
        if self.always:
            return [(start.astimezone(UTC), end.astimezone(UTC))]
        result = []
        for a, b in self._intervals_from(start):
            if a >= end:
                break
            result.append((max(a, start).astimezone(UTC), min(b, end).astimezone(UTC)))
        return merge(result)

    def gaps(self, start: datetime, end: datetime) -> list[Interval]:
        """The non-working time within ``start`` to ``end``."""
        result, cursor = [], start
        for a, b in self.intervals(start, end):
            if a > cursor:
                result.append((cursor, a))
            cursor = b
        if cursor < end:
            result.append((cursor, end))
        return result

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Working time (planned production time) from ``start`` to ``end``, in seconds."""
        return sum((b - a).total_seconds() for a, b in self.intervals(start, end))

    def is_working(self, at: datetime) -> bool:
        return self.next_working(at) == at

    def next_working(self, at: datetime) -> datetime:
        """``at`` when it is working time, else the start of the next working time."""
        if self.always:
            return at
        for start, _end in self._intervals_from(at):
            return max(start, at)
        raise AssertionError("unreachable: the horizon runs around the clock")

    def add(self, at: datetime, seconds: float | int) -> datetime:
        """The instant ``seconds`` of working time after ``at`` are done (work starts at the
        next working instant and stops over non-working time)."""
        if self.always:
            return at + timedelta(seconds=float(seconds))
        left = timedelta(seconds=float(seconds))
        if left <= timedelta(0):
            return self.next_working(at)
        for start, end in self._intervals_from(at):
            start = max(start, at)
            if start + left <= end:
                return start + left
            left -= end - start
        raise AssertionError("unreachable: the horizon runs around the clock")

    def shifts(self, start: datetime, end: datetime) -> list[ShiftInstance]:
        """The shift instances overlapping ``start`` to ``end``."""
        first = start.astimezone(self.zone).date() - DAY
        last = end.astimezone(self.zone).date()
        return [s for s in self.shift_instances(first, last) if s.end > start and s.start < end]

    def shift_at(self, at: datetime) -> ShiftInstance | None:
        """The shift instance running at ``at`` (breaks included), if any."""
        return next(iter(self.shifts(at, at + timedelta(microseconds=1))), None)


@dataclass
class Calendars:
    """Working time by work center, for the scheduler: each work center plans with its
    site's calendar; one unknown to it runs around the clock."""

    by_work_center: dict[int, WorkingTime] = field(default_factory=dict)

    def of(self, work_center_id: int) -> WorkingTime:
        return self.by_work_center.get(work_center_id) or ALWAYS


ALWAYS = WorkingTime()
