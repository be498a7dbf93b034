"""Real Modbus TCP servers on 127.0.0.1 (pymodbus, on their own event loop thread), a
server that accepts and never answers, and a poller driven cycle by cycle with a manual
clock for scheduling (network timeouts stay real)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from mes.models import Machine
from shopfloor.plc.config import parse_connection
from shopfloor.plc.modbus import LoopThread
from shopfloor.plc.poller import CycleReport, GroupPoller, PollerOptions
from shopfloor.plc.services import configure_connection
from shopfloor.plc.simulator import PlcServer, RegisterBank
from tests.factories import MachineFactory

STATE_MAP = {"1": "running", "2": "idle", "3": "down", "4": "setup"}
CODES = {state: int(code) for code, state in STATE_MAP.items()}


def register_map(
    *,
    good: dict[str, Any] | None = None,
    scrap: dict[str, Any] | None = None,
    state_table: str = "holding",
) -> dict[str, Any]:
    return {
        "state": {"table": state_table, "address": 0},
        "state_map": STATE_MAP,
        "good_count": good or {"table": "holding", "address": 1, "words": 2, "word_order": "big"},
        "scrap_count": scrap,
    }


def connection(port: int, *, timeout_ms: int = 300, **registers: Any) -> dict[str, Any]:
    return {
        "protocol": "modbus_tcp",
        "host": "127.0.0.1",
        "port": port,
        "unit_id": 1,
        "poll_interval_ms": 1000,
        "timeout_ms": timeout_ms,
        "registers": register_map(**registers),
    }


class Plc:
    """A running simulated PLC, driven from the test thread."""

    def __init__(self, loop: LoopThread, server: PlcServer) -> None:
        self.loop, self.server = loop, server

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def bank(self) -> RegisterBank:
        return self.server.bank

    def state(self, state: str, *, table: str = "holding", address: int = 0) -> None:
        self.bank.set(table, address, [CODES[state]])

    def counter(self, value: int, *, address: int = 1, words: int = 2, order: str = "big",
                table: str = "holding") -> None:  # fmt: skip
        self.bank.set_counter(table, address, value, words=words, word_order=order)

    def stop(self) -> None:
        self.loop.run(self.server.stop(), timeout=10)

    def start(self) -> None:
        self.loop.run(self.server.start(), timeout=10)


@pytest.fixture
def server_loop() -> Iterator[LoopThread]:
    """The simulated PLCs' own loop, apart from the poller's (as on a real network)."""
    loop = LoopThread(name="test-plc-servers")
    yield loop
    loop.stop()


@pytest.fixture
def plc_factory(server_loop):
    started: list[Plc] = []

    def make(port: int = 0) -> Plc:
        server = PlcServer(RegisterBank(), port=port)
        server_loop.run(server.start(), timeout=10)
        plc = Plc(server_loop, server)
        started.append(plc)
        return plc

    yield make
    for plc in started:
        plc.bank.mute = False
        if plc.server.running:
            plc.stop()


@pytest.fixture
def plc(plc_factory) -> Plc:
    return plc_factory()


@pytest.fixture
def silent_port(server_loop) -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # keep it open; read nothing, say nothing

    async def start() -> asyncio.AbstractServer:
        return await asyncio.start_server(accept, "127.0.0.1", 0)

    server = server_loop.run(start(), timeout=10)
    yield server.sockets[0].getsockname()[1]

    async def stop() -> None:
        for writer in held:
            writer.close()
        server.close()

    server_loop.run(stop(), timeout=10)


@pytest.fixture
def closed_port() -> int:
    """A loopback port where nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ManualClock:
    """Scheduling time for the poller (due times, backoff), moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


OPTIONS = PollerOptions(
    wait=1.5,
    offline_after=2,
    backoff_max=8.0,
    idle_downtime_after=60.0,
    max_parts_per_second=50.0,
    resync_every=3600.0,
    config_check_every=0.0,
)


@pytest.fixture
def poller(clock) -> Iterator[GroupPoller]:
    loop = LoopThread(name="test-plc-poller")
    poller = GroupPoller("default", options=OPTIONS, loop=loop, clock=clock)
    yield poller
    poller.close()
    loop.stop()


def cycle(poller: GroupPoller, clock: ManualClock, advance: float = 1.0) -> CycleReport:
    """Move the scheduling clock on and run one cycle."""
    clock.advance(advance)
    return poller.run_cycle()


def connect(machine: Machine, data: dict[str, Any]) -> None:
    configure_connection(machine, spec=parse_connection(data))


@pytest.fixture
def machine(db) -> Machine:
    return MachineFactory(code="PRESS-1")
