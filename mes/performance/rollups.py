"""Keeping the rollups (:class:`~mes.performance.models.MachineBucket`) as events arrive.

- A machine's state change closes its previous state's span: :func:`record_state_change`,
  called by ``mes.services.set_machine_state`` in its transaction, adds the span's seconds
  per quarter hour (split by the site's working time, see :func:`mes.performance.oee.spread`).
  When a stop (idle or down with an operation in progress) ends in less than
  ``MES_OEE_SMALL_STOP_SECONDS``, it is counted as a short stop.
- Units counted on an operation on a machine: :func:`count_rows`, added by
  ``report_quantity`` (and ``report_quantities``, merged for a whole pass); scrap within
  ``MES_OEE_STARTUP_MINUTES`` of the operation's start is a startup reject.
- :func:`rebuild` recomputes a range from the event log (state events and production
  confirmations) with the same rules (for machines whose every state change is in the log:
  those on a PLC or declared by hand), after a calendar or threshold change, or to fill the
  rollups of history loaded in bulk.

Rows are added to with one ``INSERT ... ON CONFLICT DO UPDATE SET col = col + excluded.col``
per batch, in key order, so concurrent writers add up instead of overwriting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from mes.calendars.selectors import working_times
from mes.calendars.working_time import WorkingTime
from mes.models import Machine, Operation
from mes.services import bulk

from . import oee
from .models import MachineBucket

Key = tuple[int, datetime]
CALENDAR_TTL = 60.0  # seconds a process keeps the calendars (a change elsewhere: within this)

_cache = threading.local()


def forget_calendars() -> None:
    """Drop this process's calendars (a calendar changed: see ``signals``)."""
    _cache.__dict__.clear()


def working_time_of(machine_id: int) -> WorkingTime:
    """The working time of the machine's site, kept for :data:`CALENDAR_TTL` seconds."""
    now = time.monotonic()
    if getattr(_cache, "loaded", 0) + CALENDAR_TTL < now:
        _cache.calendars = working_times()
        _cache.sites = {}
        _cache.loaded = now
    site = _cache.sites.get(machine_id)
    if site is None:
        site = (
            Machine.objects.filter(pk=machine_id)
            .values_list("work_center__area__site_id", flat=True)
            .first()
        )
        _cache.sites[machine_id] = site
    return _cache.calendars.get(site) or WorkingTime()


def _merge(into: dict[Key, oee.Totals], machine_id: int, rows: dict[datetime, oee.Totals]):
    merge(into, {(machine_id, start): row for start, row in rows.items()})


def add(rows: dict[Key, oee.Totals]) -> None:
    """Add to the rollups (inside the caller's transaction, or one of its own)."""
    if not rows:
        return
    table = connection.ops.quote_name(MachineBucket._meta.db_table)
    columns = ", ".join(oee.COLUMNS)
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in oee.COLUMNS)
    upsert = f"ON CONFLICT (machine_id, start) DO UPDATE SET {updates}"
    ordered = sorted(rows.items())
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One statement over an array per column (see mes.services.bulk).
            fields = [MachineBucket._meta.get_field(n) for n in ("machine", "start", *oee.COLUMNS)]
            arrays = ", ".join(f"%b::{bulk.array_type(f)}" for f in fields)
            values = [
                [key[0] for key, _ in ordered],
                [key[1] for key, _ in ordered],
                *(
                    [bulk.prepared(field, getattr(row, field.name)) for _, row in ordered]
                    for field in fields[2:]
                ),
            ]
            with bulk.server_bound_cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} (machine_id, start, {columns}) "
                    f"SELECT * FROM unnest({arrays}) {upsert}",
                    values,
                )
            return
        adapt = connection.ops.adapt_datetimefield_value
        placeholders = ", ".join(["%s"] * (len(oee.COLUMNS) + 2))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} (machine_id, start, {columns}) VALUES ({placeholders}) "
                + upsert,
                [
                    (machine_id, adapt(start), *(getattr(row, c) for c in oee.COLUMNS))
                    for (machine_id, start), row in ordered
                ],
            )


def work_in_progress(machine_id: int, at: datetime) -> bool:
    """Whether an operation was in progress (started, not finished) on the machine at
    ``at``: idle then is a stop, else the machine had nothing to do."""
    return (
        Operation.objects.filter(machine_id=machine_id, actual_start__lte=at)
        .filter(Q(actual_end__isnull=True) | Q(actual_end__gt=at))
        .exists()
    )


def _state_rows(
    machine_id: int,
    state: str,
    since: datetime,
    at: datetime,
    working: WorkingTime,
    work: bool | None = None,
) -> dict[datetime, oee.Totals]:
    if state == oee.IDLE and work is None:
        work = work_in_progress(machine_id, since)
    return oee.spread(state, since, at, working, work=work if work is not None else True)


def is_small_stop(stopped_at: datetime | None, at: datetime) -> bool:
    return (
        stopped_at is not None
        and (at - stopped_at).total_seconds() < settings.MES_OEE_SMALL_STOP_SECONDS
    )


def record_state_change(
    machine_id: int,
    *,
    from_state: str,
    since: datetime,
    to_state: str,
    at: datetime,
    stopped_at: datetime | None,
) -> None:
    """A machine left ``from_state`` (held since ``since``) for ``to_state`` at ``at``;
    ``stopped_at`` is when its current stop began (None when it was not stopped)."""
    if at <= since:
        return
    working = working_time_of(machine_id)
    rows: dict[Key, oee.Totals] = {}
    _merge(rows, machine_id, _state_rows(machine_id, from_state, since, at, working))
    ends_stop = oee.is_stop(from_state) and not oee.is_stop(to_state)
    if ends_stop and is_small_stop(stopped_at, at) and work_in_progress(machine_id, stopped_at):
        _merge(rows, machine_id, oee.small_stop(stopped_at, at, working))
    add(rows)


def counted(
    good: float, scrap: float, cycle_seconds: float, started: datetime | None, at: datetime
) -> oee.Totals:
    window = timedelta(minutes=settings.MES_OEE_STARTUP_MINUTES)
    startup = bool(scrap) and started is not None and at - started <= window
    return oee.count_row(good, scrap, cycle_seconds, startup=startup)


def count_rows(
    operation: Operation, *, good: float, scrap: float, at: datetime
) -> dict[Key, oee.Totals]:
    """The rollup rows of units reported on an operation, to :func:`add` (or to
    :func:`merge` with others first)."""
    if operation.machine_id is None:
        return {}  # a manual station: no machine, no OEE
    row = counted(
        float(good), float(scrap), float(operation.cycle_seconds), operation.actual_start, at
    )
    return {(operation.machine_id, oee.bucket_of(at)): row}


def merge(into: dict[Key, oee.Totals], rows: dict[Key, oee.Totals]) -> None:
    for key, row in rows.items():
        into[key] = into[key] + row if key in into else row


# --- Rebuilding from the event log ------------------------------------------------------------


def _rebuild_machine(
    machine_id: int, start: datetime, end: datetime, working: WorkingTime
) -> dict[Key, oee.Totals]:
    from shopfloor.models import MachineStateEvent  # the log lives with the PLC side

    rows: dict[Key, oee.Totals] = {}
    before = (
        MachineStateEvent.objects.filter(machine_id=machine_id, started_at__lt=start)
        .order_by("-started_at", "-id")
        .values_list("state", "started_at")
        .first()
    )
    # Before its first event a machine has no span (it may not have existed yet).
    state, since = (before[0], start) if before else (None, start)
    stopped_at = start if before and oee.is_stop(before[0]) else None
    operations = list(
        Operation.objects.filter(machine_id=machine_id, actual_start__isnull=False)
        .filter(Q(actual_end__isnull=True) | Q(actual_end__gt=start))
        .values_list("actual_start", "actual_end")
    )

    def work(at: datetime) -> bool:
        return any(a <= at and (b is None or b > at) for a, b in operations)

    events = (
        MachineStateEvent.objects.filter(
            machine_id=machine_id, started_at__gte=start, started_at__lt=end
        )
        .order_by("started_at", "id")
        .values_list("state", "started_at")
    )
    for new_state, at in events.iterator(chunk_size=5000):
        if new_state == state:
            continue
        if state is not None:
            flag = work(since) if state == oee.IDLE else None
            _merge(rows, machine_id, _state_rows(machine_id, state, since, at, working, flag))
        if oee.is_stop(state) and not oee.is_stop(new_state):
            if stopped_at is not None and is_small_stop(stopped_at, at) and work(stopped_at):
                _merge(rows, machine_id, oee.small_stop(stopped_at, at, working))
            stopped_at = None
        elif oee.is_stop(new_state) and not oee.is_stop(state):
            stopped_at = at
        state, since = new_state, at
    closed_later = MachineStateEvent.objects.filter(
        machine_id=machine_id, started_at__gte=end
    ).exists()
    if closed_later and state is not None:  # the span open at ``end`` ended: up to ``end``
        flag = work(since) if state == oee.IDLE else None
        _merge(rows, machine_id, _state_rows(machine_id, state, since, end, working, flag))
    return rows


def rebuild(*, start: datetime, end: datetime, machine_ids: Iterable[int] | None = None) -> int:
    """Recompute the rollups of ``start`` to ``end`` (taken to whole quarter hours) from the
    state events and production confirmations. The span still open at ``end`` is left to
    the next state change, as when events arrive (unless it has ended since: then its part
    up to ``end`` is counted). Returns the number of rows written."""
    from mes.models import ProductionConfirmation

    start, end = oee.bucket_of(start), oee.bucket_of(end)
    ids = (
        list(machine_ids)
        if machine_ids is not None
        else list(Machine.objects.values_list("pk", flat=True))
    )
    forget_calendars()
    written = 0
    for machine_id in ids:
        rows = _rebuild_machine(machine_id, start, end, working_time_of(machine_id))
        confirmations = ProductionConfirmation.objects.filter(
            operation__machine_id=machine_id, occurred_at__gte=start, occurred_at__lt=end
        ).values_list(
            "quantity_good",
            "quantity_scrap",
            "operation__cycle_seconds",
            "operation__actual_start",
            "occurred_at",
        )
        for good, scrap, cycle, started, at in confirmations.iterator(chunk_size=5000):
            _merge(
                rows,
                machine_id,
                {oee.bucket_of(at): counted(float(good), float(scrap), float(cycle), started, at)},
            )
        with transaction.atomic():
            MachineBucket.objects.filter(
                machine_id=machine_id, start__gte=start, start__lt=end
            ).delete()
            add({key: row for key, row in rows.items() if start <= key[1] < end})
        written += len(rows)
    return written
