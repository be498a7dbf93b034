"""Commit-ordered clocks for feeds that readers walk with a cursor.

A transaction takes the clock's row lock as its last step and holds it until it commits,
so values are handed out in commit order: a writer that has not committed yet will get a
value above everything a reader could already see. Used for work-order ``updated_at``
(the changes feed) and confirmation ``seq`` (gap-free: a rolled-back transaction gives
its number back).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .models import ChangeClock

WORK_ORDERS = "work_orders"
CONFIRMATIONS = "confirmations"
_TICK = timedelta(microseconds=1)


def _lock(name: str) -> ChangeClock:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Clock values must be taken inside the writing transaction.")
    try:
        return ChangeClock.objects.select_for_update().get(name=name)
    except ChangeClock.DoesNotExist:
        ChangeClock.objects.bulk_create([ChangeClock(name=name)], ignore_conflicts=True)
        return ChangeClock.objects.select_for_update().get(name=name)


def next_time(name: str = WORK_ORDERS) -> datetime:
    """Now, or just after the last value handed out: strictly increasing."""
    return next_times(name, 1)[0]


def next_times(name: str, count: int) -> list[datetime]:
    """``count`` strictly increasing times, all after the last value handed out (one lock for
    a whole batch of writes)."""
    if count < 1:
        return []
    clock = _lock(name)
    now = timezone.now()
    first = now if clock.last_time is None or now > clock.last_time else clock.last_time + _TICK
    values = [first + i * _TICK for i in range(count)]
    clock.last_time = values[-1]
    clock.save(update_fields=["last_time"])
    return values


def next_value(name: str = CONFIRMATIONS) -> int:
    """The next integer, gap-free."""
    return next_values(name, 1)[0]


def next_values(name: str, count: int) -> list[int]:
    """The next ``count`` integers, gap-free."""
    if count < 1:
        return []
    clock = _lock(name)
    first = clock.last_value + 1
    clock.last_value += count
    clock.save(update_fields=["last_value"])
    return list(range(first, first + count))
