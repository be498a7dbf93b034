"""Simulated PLCs: pymodbus Modbus TCP servers on 127.0.0.1 whose registers follow a small
machine model (cycle times with jitter, micro-stops, breakdowns and repairs, setups, scrap).

Used by ``manage.py simulate_plcs`` (the demo), the tests and the benchmark. No ORM: the
scenario's profiles are plain register maps, parsed with :mod:`.registers`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .registers import HOLDING, RegisterMap, encode_counter, parse_register_map

logger = logging.getLogger("shopfloor.plc.simulator")

DEMO_SCENARIO = Path(__file__).with_name("scenarios") / "demo.toml"
READ_CODES = {3: HOLDING, 4: "input"}
REGISTERS = 256


class RegisterBank:
    """The registers of one simulated PLC. The server copies from here on every read, so
    whoever holds the bank (a machine model, a test) changes what the PLC answers.

    Faults for tests: ``exception`` (answer every request with that Modbus exception code),
    ``mute`` (accept requests, never answer), ``garble`` (answer with a broken frame)."""

    def __init__(self, size: int = REGISTERS) -> None:
        self.tables: dict[str, list[int]] = {HOLDING: [0] * size, "input": [0] * size}
        self.exception: int | None = None
        self.mute = False
        self.garble = False
        self.reads = 0
        self.on_read: Callable[[RegisterBank], None] | None = None

    def set(self, table: str, address: int, values: Sequence[int]) -> None:
        self.tables[table][address : address + len(values)] = [v & 0xFFFF for v in values]

    def get(self, table: str, address: int, count: int = 1) -> list[int]:
        return self.tables[table][address : address + count]

    def set_counter(
        self, table: str, address: int, value: int, *, words: int = 1, word_order: str = "big"
    ) -> None:
        self.set(table, address, encode_counter(value, words, word_order))

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: Any,
    ) -> ExcCodes | None:
        if self.mute:
            await asyncio.Event().wait()  # never answers; cancelled when the server stops
        if self.exception is not None:
            return ExcCodes(self.exception)
        table = READ_CODES.get(function_code)
        if table is None or set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # read-only: the MES never writes
        self.reads += 1
        if self.on_read is not None:
            self.on_read(self)
        offset = address - start_address
        registers[offset : offset + count] = self.tables[table][address : address + count]
        return None


def sim_device(bank: RegisterBank, unit_id: int = 0) -> SimDevice:
    """A pymodbus device with separate holding and input registers (``unit_id`` 0 answers
    every unit id)."""
    size = len(bank.tables[HOLDING])
    bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    return SimDevice(
        id=unit_id,
        simdata=(
            bits,
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=size, datatype=DataType.REGISTERS)],
            [SimData(0, count=size, datatype=DataType.REGISTERS)],
        ),
        action=bank.action,
    )


class PlcServer:
    """One simulated PLC: a pymodbus TCP server on ``host:port`` (port 0 picks a free one).
    Start and stop it on a running event loop; it can be started again on the same port."""

    def __init__(
        self,
        bank: RegisterBank | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        unit_id: int = 0,
    ) -> None:
        self.bank = bank or RegisterBank()
        self.host, self.port, self.unit_id = host, port, unit_id
        self._server: ModbusTcpServer | None = None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending and self.bank.garble and len(data) > 9:
            # A frame whose length field promises more than it carries, then garbage.
            return data[:4] + b"\x00\x03" + data[6:9] + b"\xff"
        return data

    async def start(self) -> int:
        server = ModbusTcpServer(
            sim_device(self.bank, self.unit_id),
            address=(self.host, self.port),
            trace_packet=self._trace,
        )
        await server.serve_forever(background=True)
        self._server = server
        self.port = server.transport.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    @property
    def running(self) -> bool:
        return self._server is not None


# --- Scenarios ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    code: str
    name: str
    registers: dict[str, Any]  # the contract's registers object

    @property
    def register_map(self) -> RegisterMap:
        return parse_register_map(self.registers)


@dataclass(frozen=True)
class Behaviour:
    """How a simulated machine behaves. Rates are per hour of running."""

    cycle_seconds: float = 10.0
    jitter: float = 0.1  # +- fraction of the cycle time
    scrap_rate: float = 0.02
    micro_stops_per_hour: float = 10.0
    micro_stop_seconds: tuple[float, float] = (3.0, 20.0)
    breakdowns_per_hour: float = 0.3
    repair_minutes: tuple[float, float] = (1.0, 5.0)
    setup_every_parts: int = 0  # 0: never
    setup_minutes: tuple[float, float] = (2.0, 5.0)
    idle_share: float = 0.0  # share of time spent idle between batches
    start_good: int = 0
    start_scrap: int = 0


@dataclass(frozen=True)
class SimulatedMachine:
    code: str
    port: int
    profile: Profile
    behaviour: Behaviour
    unit_id: int = 1


@dataclass(frozen=True)
class Scenario:
    host: str
    base_port: int
    poll_interval_ms: int
    timeout_ms: int
    seed: int
    profiles: dict[str, Profile]
    machines: tuple[SimulatedMachine, ...]


def _pair(value: Any, default: tuple[float, float]) -> tuple[float, float]:
    if value is None:
        return default
    low, high = value
    return float(low), float(high)


def _behaviour(data: dict[str, Any]) -> Behaviour:
    micro = data.get("micro_stops", {})
    breakdowns = data.get("breakdowns", {})
    setups = data.get("setups", {})
    base = Behaviour()
    return Behaviour(
        cycle_seconds=float(data.get("cycle_seconds", base.cycle_seconds)),
        jitter=float(data.get("jitter", base.jitter)),
        scrap_rate=float(data.get("scrap_rate", base.scrap_rate)),
        micro_stops_per_hour=float(micro.get("per_hour", base.micro_stops_per_hour)),
        micro_stop_seconds=_pair(micro.get("seconds"), base.micro_stop_seconds),
        breakdowns_per_hour=float(breakdowns.get("per_hour", base.breakdowns_per_hour)),
        repair_minutes=_pair(breakdowns.get("repair_minutes"), base.repair_minutes),
        setup_every_parts=int(setups.get("every_parts", base.setup_every_parts)),
        setup_minutes=_pair(setups.get("minutes"), base.setup_minutes),
        idle_share=float(data.get("idle_share", base.idle_share)),
        start_good=int(data.get("start_good", 0)),
        start_scrap=int(data.get("start_scrap", 0)),
    )


def load_scenario(
    path: Path | str = DEMO_SCENARIO, *, machines: int | None = None, base_port: int | None = None
) -> Scenario:
    """Read a scenario file (TOML). With ``machines``, the file's machines are repeated (codes
    suffixed, ports counting up) until there are that many; ``base_port`` overrides the
    file's first port."""
    data = tomllib.loads(Path(path).read_text())
    profiles = {
        code: Profile(code=code, name=p.get("name", code), registers=p["registers"])
        for code, p in data.get("profiles", {}).items()
    }
    for profile in profiles.values():
        profile.register_map  # noqa: B018 -- validates, raising SpecError with the field
    base_port = base_port if base_port is not None else int(data.get("base_port", 15020))
    templates = data.get("machines", [])
    if not templates:
        raise ValueError(f"{path}: no [[machines]]")
    count = machines if machines is not None else len(templates)
    built = []
    for index in range(count):
        template = templates[index % len(templates)]
        lap = index // len(templates)
        code = template["code"] if lap == 0 else f"{template['code']}-{lap + 1}"
        built.append(
            SimulatedMachine(
                code=code,
                port=base_port + index,
                profile=profiles[template["profile"]],
                behaviour=_behaviour(template),
                unit_id=int(template.get("unit_id", 1)),
            )
        )
    return Scenario(
        host=data.get("host", "127.0.0.1"),
        base_port=base_port,
        poll_interval_ms=int(data.get("poll_interval_ms", 1000)),
        timeout_ms=int(data.get("timeout_ms", 500)),
        seed=int(data.get("seed", 1)),
        profiles=profiles,
        machines=tuple(built),
    )


# --- The machine model --------------------------------------------------------------------------


@dataclass
class MachineModel:
    """Drives one PLC's registers: runs cycles, stops, breaks down, sets up."""

    machine: SimulatedMachine
    bank: RegisterBank
    rng: random.Random
    speed: float = 1.0  # >1 runs the clock faster (tests, impatient demos)
    good: int = 0
    scrap: int = 0
    state: str = "idle"
    parts_since_setup: int = 0
    history: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.regmap = self.machine.profile.register_map
        self.codes: dict[str, int] = {}
        for code, state in sorted(self.regmap.state_map.items()):
            self.codes.setdefault(state, code)
        self.good, self.scrap = (
            self.machine.behaviour.start_good,
            self.machine.behaviour.start_scrap,
        )
        self._publish()

    def _publish(self) -> None:
        state = self.regmap.state
        self.bank.set(state.table, state.address, [self.codes.get(self.state, 0)])
        good = self.regmap.good_count
        self.bank.set_counter(
            good.table, good.address, self.good, words=good.words, word_order=good.word_order
        )
        scrap = self.regmap.scrap_count
        if scrap is not None:
            self.bank.set_counter(
                scrap.table,
                scrap.address,
                self.scrap,
                words=scrap.words,
                word_order=scrap.word_order,
            )

    def _enter(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.history.append(state)
            self._publish()

    async def _hold(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.speed)

    def _chance(self, per_hour: float, seconds: float) -> bool:
        return self.rng.random() < per_hour * seconds / 3600

    async def step(self) -> None:
        """One cycle of the machine: maybe a stop first, then one part."""
        b = self.machine.behaviour
        cycle = b.cycle_seconds * (1 + self.rng.uniform(-b.jitter, b.jitter))
        if b.setup_every_parts and self.parts_since_setup >= b.setup_every_parts:
            self._enter("setup")
            await self._hold(60 * self.rng.uniform(*b.setup_minutes))
            self.parts_since_setup = 0
        if self._chance(b.breakdowns_per_hour, cycle):
            self._enter("down")
            await self._hold(60 * self.rng.uniform(*b.repair_minutes))
        elif self._chance(b.micro_stops_per_hour, cycle):
            self._enter("idle")
            await self._hold(self.rng.uniform(*b.micro_stop_seconds))
        elif b.idle_share and self.rng.random() < b.idle_share / 20:
            self._enter("idle")  # waiting for material or an operator, 20 cycles on average
            await self._hold(cycle * 20)
        self._enter("running")
        await self._hold(cycle)
        if self.rng.random() < b.scrap_rate:
            self.scrap += 1
        else:
            self.good += 1
        self.parts_since_setup += 1
        self._publish()

    async def run(self) -> None:
        while True:
            await self.step()


async def serve_scenario(
    scenario: Scenario, *, speed: float = 1.0, host: str | None = None
) -> tuple[list[PlcServer], list[MachineModel]]:
    """Start one server and machine model per simulated machine."""
    rng = random.Random(scenario.seed)
    servers, models = [], []
    for machine in scenario.machines:
        bank = RegisterBank()
        model = MachineModel(machine, bank, random.Random(rng.random()), speed=speed)
        server = PlcServer(bank, host=host or scenario.host, port=machine.port)
        await server.start()
        servers.append(server)
        models.append(model)
    return servers, models


async def stop_all(servers: Iterable[PlcServer]) -> None:
    for server in servers:
        await server.stop()
