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
    clock = _lock(name)
    now = timezone.now()
    value = now if clock.last_time is None or now > clock.last_time else clock.last_time + _TICK
    clock.last_time = value
    clock.save(update_fields=["last_time"])
    return value


def next_value(name: str = CONFIRMATIONS) -> int:
    """The next integer, gap-free."""
    clock = _lock(name)
    clock.last_value += 1
    clock.save(update_fields=["last_value"])
    return clock.last_value
