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
    return connectivity(machines)[0]


def connection_representation(machine: Machine) -> dict[str, Any] | None:
    """The machine's connection in the shape of the PUT body (``None`` without one), so that
    a GET can be sent back unchanged. ``registers`` is the effective map (the profile's when
    the machine uses one); ``profile``, ``group`` and ``enabled`` are additions to the
    contract."""
    return connectivity([machine])[1][machine.pk]


Blocks = dict[int, dict[str, Any] | None]


def connectivity(machines: Sequence[Machine]) -> tuple[Blocks, Blocks]:
    """``(plc blocks, connections)`` by machine id, from one query."""
    ids = [m.pk for m in machines]
    blocks: Blocks = dict.fromkeys(ids)
    connections: Blocks = dict.fromkeys(ids)
    if not ids:
        return blocks, connections
    rows = MachineConnection.objects.select_related("profile", "machine__plc_status").filter(
        machine_id__in=ids
    )
    for conn in rows:
        status = getattr(conn.machine, "plc_status", None)
        blocks[conn.machine_id] = {
            "last_read_at": iso_utc(status.last_read_at) if status else None,
            "last_error": (status.last_error or None) if status else None,
            "good_count": status.good_raw if status else None,
            "scrap_count": status.scrap_raw if status else None,
        }
        connections[conn.machine_id] = {
            "protocol": PROTOCOL,
            "host": conn.host,
            "port": conn.port,
            "unit_id": conn.unit_id,
            "poll_interval_ms": conn.poll_interval_ms,
            "timeout_ms": conn.timeout_ms,
            "registers": conn.effective_register_map(),
            "profile": conn.profile.code if conn.profile_id else None,
            "group": conn.group,
            "enabled": conn.enabled,
        }
    return blocks, connections


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
