"""The asyncio side of polling: pymodbus clients on one event loop thread per process.

The loop thread owns every socket, so connections live on between poll cycles (a Celery
task only hands it work and waits); database work stays in the caller's thread. Nothing
here imports the ORM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any, TypeVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException

from mes import netguard

from .registers import HOLDING, ReadSpan

logger = logging.getLogger("shopfloor.plc")

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self, name: str = "plc-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result from this (other) thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, callback: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


_shared: tuple[int, LoopThread] | None = None
_shared_lock = threading.Lock()


def shared_loop() -> LoopThread:
    """This process's loop thread (a forked Celery child starts its own)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid() or not _shared[1].alive:
            _shared = (os.getpid(), LoopThread())
        return _shared[1]


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    unit_id: int
    timeout: float  # seconds, for connecting and reading everything the plan needs

    def __str__(self) -> str:
        return f"{self.host}:{self.port} unit {self.unit_id}"


# Failures whose message users and API clients may read: a Modbus exception response
# (a Modbus device answered) and a host the MES will not connect to. Every other failure
# (refused, timed out, reset, unresolved, not Modbus) is shown as one message and, in the
# poller, completes when the device's timeout is up: telling those apart, by words or by
# time, would make the MES a port scanner for whoever may set a machine's host and port.
# The log keeps the details.
SHOWN_KINDS = frozenset({"exception", "blocked"})


class ReadFailure(Exception):
    """A poll that produced no usable answer. ``kind`` is one of ``refused``, ``timeout``,
    ``reset``, ``unresolved``, ``exception`` (a Modbus exception response), ``malformed``,
    ``blocked`` (an address the MES does not connect to)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def shown(self, endpoint: Endpoint) -> str:
        """The message for users and API clients (the status, the machine's offline reason)."""
        if self.kind in SHOWN_KINDS:
            return self.message
        return f"no Modbus answer from {endpoint.host}:{endpoint.port}"


def describe_exception_code(code: int) -> str:
    try:
        return ExcCodes(code).name.lower().replace("_", " ")
    except ValueError:
        return "unknown exception code"


def frame_problem(data: bytes) -> str | None:
    """What is wrong with a received Modbus TCP frame (MBAP header and a read response), or
    None when it is fine or not complete yet."""
    if len(data) < 9:
        return None
    _tid, protocol, length, _unit, function = struct.unpack_from(">HHHBB", data)
    if protocol != 0:
        return f"protocol id {protocol}, not 0"
    if not 3 <= length <= 253:
        return f"frame length {length} out of range"
    if len(data) < 6 + length:
        return None
    if function & 0x80:
        return None if length == 3 else f"exception frame of length {length}"
    byte_count = data[8]
    if function in (3, 4) and (length != 3 + byte_count or byte_count % 2):
        return f"byte count {byte_count} does not fit frame length {length}"
    return None


def _where(span: ReadSpan) -> str:
    return f"{span.table} {span.address}+{span.count}"


class DeviceLink:
    """One PLC: a pymodbus asyncio client, connected on demand and kept between polls.
    Any failure other than an exception response drops the connection, so the next poll
    starts from a clean one.

    With an ``allow`` list (the poller's), each connection first resolves the host, checks
    every address (:data:`mes.netguard.PLC`) and connects to the checked one; without (the
    ``modbus_probe`` command an administrator runs), it connects wherever it is told."""

    def __init__(
        self, endpoint: Endpoint, name: str = "plc", *, allow: netguard.AllowList | None = None
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self.allow = allow
        self.client: AsyncModbusTcpClient | None = None

    async def _resolved(self, host: str) -> list[str]:
        try:
            return [str(ip_address(host))]
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, self.endpoint.port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):
            infos = []
        if not infos:
            raise ReadFailure("unresolved", f"name {host} not resolved")
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def _address(self) -> str:
        """Where to connect: the host itself without an allow-list, else the first address
        it resolves to, every one of them checked."""
        host = self.endpoint.host
        if self.allow is None:
            return host
        found = await self._resolved(host)
        try:
            checked = netguard.check_addresses(host, found, refused=netguard.PLC, allow=self.allow)
        except netguard.TargetNotAllowed as exc:
            raise ReadFailure("blocked", str(exc)) from None
        return str(checked[0])

    async def _connected(self) -> AsyncModbusTcpClient:
        if self.client is not None and self.client.connected:
            return self.client
        self.close()
        client = AsyncModbusTcpClient(
            await self._address(),
            port=self.endpoint.port,
            name=self.name,
            # pymodbus's own timeouts stay out of the way: the caller's deadline decides.
            timeout=self.endpoint.timeout * 2 + 1,
            retries=0,
            reconnect_delay=0,
            trace_connect=self._on_connect_change,
            trace_packet=self._inspect,
        )
        self.client = client
        if not await client.connect():
            self.close()
            where = f"{self.endpoint.host}:{self.endpoint.port}"
            raise ReadFailure("refused", f"cannot connect to {where}")
        return client

    def _fail_pending(self, exc: Exception) -> None:
        pending = getattr(getattr(self.client, "ctx", None), "response_future", None)
        if pending is not None and not pending.done():
            pending.set_exception(exc)

    def _on_connect_change(self, connected: bool) -> None:
        if not connected and self.client is not None:
            # The peer closed or reset the connection: fail a pending request now rather
            # than letting it run into the timeout.
            self._fail_pending(ConnectionResetError("connection closed by the PLC"))

    def _inspect(self, sending: bool, data: bytes) -> bytes:
        """Check received frames before pymodbus decodes them: a broken one fails the request
        as malformed (pymodbus would raise inside the transport and drop the connection)."""
        if sending:
            return data
        problem = frame_problem(data)
        if problem is None:
            return data
        self._fail_pending(ReadFailure("malformed", f"broken frame: {problem}"))
        return b""

    async def _read_span(self, client: AsyncModbusTcpClient, span: ReadSpan) -> list[int]:
        read = (
            client.read_holding_registers if span.table == HOLDING else client.read_input_registers
        )
        response = await read(span.address, count=span.count, device_id=self.endpoint.unit_id)
        if response.isError():
            code = getattr(response, "exception_code", 0)
            raise ReadFailure(
                "exception",
                f"exception {code} ({describe_exception_code(code)}) reading {_where(span)}",
            )
        registers = getattr(response, "registers", None) or []
        if len(registers) != span.count:
            raise ReadFailure(
                "malformed",
                f"answer to {_where(span)} has {len(registers)} registers, not {span.count}",
            )
        return registers

    async def read(self, spans: Sequence[ReadSpan]) -> list[list[int]]:
        """Read every span, within the endpoint's timeout. Raises :class:`ReadFailure`."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.endpoint.timeout):
                client = await self._connected()
                return [await self._read_span(client, span) for span in spans]
        except ReadFailure as failure:
            if failure.kind != "exception":
                self.close()
            raise
        except TimeoutError:
            self.close()
            waited = round((time.monotonic() - started) * 1000)
            raise ReadFailure("timeout", f"no answer within {waited} ms") from None
        except (ConnectionError, OSError) as exc:
            self.close()
            raise ReadFailure("reset", f"connection lost: {exc}") from None
        except (ModbusException, ValueError, struct.error) as exc:
            self.close()
            raise ReadFailure("malformed", f"unreadable answer: {exc}") from None

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()


@dataclass(slots=True)
class ReadOutcome:
    """The result of one poll of one device, stamped with when it completed."""

    key: Any  # whatever the caller uses to find the device again
    at: datetime
    values: list[list[int]] | None = None
    failure: ReadFailure | None = None


async def poll(link: DeviceLink, spans: Sequence[ReadSpan], key: Any) -> ReadOutcome:
    """Never raises: every failure, even an unexpected one, becomes an outcome. A failure
    not shown in detail (:data:`SHOWN_KINDS`) completes when the device's timeout is up,
    however early it came, so that its timing does not tell either."""
    started = time.monotonic()
    try:
        values = await link.read(spans)
        return ReadOutcome(key, datetime.now(UTC), values=values)
    except ReadFailure as failure:
        if failure.kind not in SHOWN_KINDS:
            await asyncio.sleep(max(0.0, started + link.endpoint.timeout - time.monotonic()))
        return ReadOutcome(key, datetime.now(UTC), failure=failure)
    except Exception as exc:  # a bug or a pymodbus surprise must not end the cycle
        logger.exception("Unexpected error polling %s", link.name)
        link.close()
        return ReadOutcome(key, datetime.now(UTC), failure=ReadFailure("malformed", repr(exc)))
