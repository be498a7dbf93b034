"""The contract's ``connection`` object: validation into a plain :class:`ConnectionSpec`.

Pure: no Django. Profiles are referred to by code here; the services resolve them.

Beyond the contract (additions, all optional): ``profile`` (the code of a device profile
whose register map the machine shares), ``group`` (the poll group, i.e. the Celery queue
``plc.<group>``), ``enabled`` (false keeps the connection without polling it; left out, an
existing connection keeps its setting), and ``state_map`` beside ``registers`` (the contract
places it inside ``registers``; both spellings are accepted, the representation uses the
contract's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .registers import (
    FieldErrors,
    RegisterMap,
    SpecError,
    check_int,
    check_object,
    parse_register_map,
)

PROTOCOL = "modbus_tcp"
CONNECTION_KEYS = (
    "protocol",
    "host",
    "port",
    "unit_id",
    "poll_interval_ms",
    "timeout_ms",
    "registers",
    "state_map",
    "profile",
    "group",
    "enabled",
)
DEFAULTS = {"port": 502, "unit_id": 1, "poll_interval_ms": 1000, "timeout_ms": 500}
POLL_INTERVAL_MS = (100, 3_600_000)
TIMEOUT_MS = (20, 10_000)
HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^[0-9A-Fa-f:.]+$")
GROUP_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
CODE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class ConnectionSpec:
    host: str
    port: int
    unit_id: int
    poll_interval_ms: int
    timeout_ms: int
    # None with no profile: keep the current map (partial specs only, see parse_connection).
    registers: RegisterMap | None
    profile: str | None = None
    # None: an existing connection keeps its group; a new one is in "default".
    group: str | None = None
    # None: a new connection is enabled, an existing one keeps its setting.
    enabled: bool | None = None
    # False when the spec left ``profile`` out: a machine on a profile stays on it while
    # ``registers`` is left out too or equals the profile's map.
    profile_given: bool = True


def _merge_state_map(data: Mapping[str, Any], path: str, errors: FieldErrors) -> Any:
    """``registers`` with a ``state_map`` given beside it moved inside."""
    registers = data.get("registers")
    if "state_map" not in data:
        return registers
    outside = data["state_map"]
    if registers is None:
        return {"state_map": outside}
    if not isinstance(registers, Mapping):
        return registers
    inside = registers.get("state_map")
    if inside is not None and inside != outside:
        errors.add(f"{path}.state_map", "Give state_map once, inside registers.")
        return registers
    return {**registers, "state_map": outside}


def parse_connection(
    data: Any,
    *,
    path: str = "connection",
    groups: tuple[str, ...] = ("default",),
    partial: bool = False,
) -> ConnectionSpec:
    """Validate a ``connection`` object as JSON-decoded. Raises :class:`SpecError` with every
    problem by field path (``connection.registers.state.table``).

    Left-out ``group``, ``profile`` and ``enabled`` keep what an existing connection has. With
    ``partial`` (the API's PUT), ``registers`` and ``profile`` may both be left out: the
    existing connection keeps its map (a new one then has none, which the service refuses)."""
    errors = FieldErrors()
    if not check_object(data, path, errors, CONNECTION_KEYS):
        errors.raise_if_any()
    if data.get("protocol", PROTOCOL) != PROTOCOL:
        errors.add(f"{path}.protocol", f"Only {PROTOCOL} is supported.")
    host = data.get("host")
    if not isinstance(host, str) or not HOST_RE.match(host.strip()):
        errors.add(f"{path}.host", "Enter a host name or an IP address.")
        host = None
    values = {key: data.get(key, default) for key, default in DEFAULTS.items()}
    port = check_int(values["port"], f"{path}.port", errors, 1, 65535)
    unit_id = check_int(values["unit_id"], f"{path}.unit_id", errors, 0, 255)
    interval = check_int(
        values["poll_interval_ms"], f"{path}.poll_interval_ms", errors, *POLL_INTERVAL_MS
    )
    timeout = check_int(values["timeout_ms"], f"{path}.timeout_ms", errors, *TIMEOUT_MS)
    profile = data.get("profile")
    if profile is not None and (not isinstance(profile, str) or not CODE_RE.match(profile)):
        errors.add(f"{path}.profile", "Enter the code of a device profile.")
    group = data.get("group")
    if "group" not in data:
        pass
    elif not isinstance(group, str) or not GROUP_RE.match(group):
        errors.add(f"{path}.group", "Lower-case letters, digits, - and _ (at most 32).")
    elif group not in groups:
        errors.add(f"{path}.group", f"Unknown poll group; configured: {', '.join(groups)}.")
    enabled = data.get("enabled")
    if "enabled" in data and not isinstance(enabled, bool):
        errors.add(f"{path}.enabled", "Must be true or false.")
    registers_data = _merge_state_map(data, path, errors)
    registers = None
    if registers_data is not None:
        try:
            registers = parse_register_map(registers_data, path=f"{path}.registers")
        except SpecError as exc:
            for key, messages in exc.errors.items():
                for message in messages:
                    errors.add(key, message)
    elif profile is None and not (partial and "profile" not in data):
        errors.add(f"{path}.registers", "Give the register map (or a device profile).")
    errors.raise_if_any()
    assert host is not None and port is not None and unit_id is not None
    assert interval is not None and timeout is not None
    return ConnectionSpec(
        host=host.strip(),
        port=port,
        unit_id=unit_id,
        poll_interval_ms=interval,
        timeout_ms=timeout,
        registers=registers,
        profile=profile,
        group=group,
        enabled=enabled,
        profile_given="profile" in data,
    )
