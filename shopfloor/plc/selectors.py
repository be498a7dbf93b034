"""Reads of machine connectivity: the contract's ``plc`` block and ``connection`` object,
and state history for screens (downtime: :mod:`shopfloor.downtime`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mes.formats import iso_utc
from mes.models import Machine
from shopfloor.models import MachineConnection, MachineStateEvent

from .config import PROTOCOL


def plc_blocks(machines: Sequence[Machine]) -> dict[int, dict[str, Any] | None]:
    """The contract's ``plc`` block for each machine id, in one query: ``None`` for a machine
    without a connection, else ``{"last_read_at", "last_error", "good_count",
    "scrap_count"}`` with the counters as the PLC's raw decoded values (for commissioning)."""
    ids = [m.pk for m in machines]
    blocks: dict[int, dict[str, Any] | None] = dict.fromkeys(ids)
    if not ids:
        return blocks
    rows = MachineConnection.objects.filter(machine_id__in=ids).values_list(
        "machine_id",
        "machine__plc_status__last_read_at",
        "machine__plc_status__last_error",
        "machine__plc_status__good_raw",
        "machine__plc_status__scrap_raw",
    )
    for machine_id, last_read_at, last_error, good, scrap in rows:
        blocks[machine_id] = {
            "last_read_at": iso_utc(last_read_at),
            "last_error": last_error or None,
            "good_count": good,
            "scrap_count": scrap,
        }
    return blocks


def connection_representation(machine: Machine) -> dict[str, Any] | None:
    """The machine's connection in the shape of the PUT body (``None`` without one), so that
    a GET can be sent back unchanged. ``registers`` is the effective map (the profile's when
    the machine uses one); ``profile`` and ``group`` are additions to the contract."""
    conn = MachineConnection.objects.select_related("profile").filter(machine=machine).first()
    if conn is None:
        return None
    return {
        "protocol": PROTOCOL,
        "host": conn.host,
        "port": conn.port,
        "unit_id": conn.unit_id,
        "poll_interval_ms": conn.poll_interval_ms,
        "timeout_ms": conn.timeout_ms,
        "registers": conn.effective_register_map(),
        "profile": conn.profile.code if conn.profile_id else None,
        "group": conn.group,
    }


def state_timeline(
    machine: Machine, *, start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime]]:
    """The machine's states as ``(state, from, until)`` periods covering [start, end): the
    state it was in at ``start`` (if known) and every change until ``end``."""
    events = MachineStateEvent.objects.filter(machine=machine)
    before = events.filter(started_at__lte=start).order_by("-started_at", "-id").first()
    changes = list(
        events.filter(started_at__gt=start, started_at__lt=end).order_by("started_at", "id")
    )
    if before is not None:
        changes.insert(0, before)
    periods = []
    for current, following in zip(changes, [*changes[1:], None], strict=True):
        periods.append(
            (
                current.state,
                max(current.started_at, start),
                following.started_at if following is not None else end,
            )
        )
    return periods
