"""The commissioning probe, the PLC simulator, and the demo: seed_demo connects the demo
machines to the simulated PLCs (idempotently), and polling them moves states and counts."""

from __future__ import annotations

import io
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from pymodbus.client import ModbusTcpClient

from mes.models import Machine
from shopfloor.models import DeviceProfile, MachineConnection, MachineStateEvent, PlcStatus
from shopfloor.plc.demo import configure_demo_connections
from shopfloor.plc.modbus import LoopThread
from shopfloor.plc.poller import GroupPoller
from shopfloor.plc.simulator import load_scenario

from .conftest import OPTIONS

ROOT = Path(__file__).resolve().parents[2]


def test_probe_prints_what_the_plc_answers(plc):
    plc.bank.set("holding", 0, [1, 0x0001, 0x86A0, 7])  # 0x000186A0 == 100000

    out = io.StringIO()
    call_command("modbus_probe", f"127.0.0.1:{plc.port}", "--read", "holding:0:4", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"127.0.0.1:{plc.port} unit 1 answered in")
    assert lines[1] == "holding registers 0-3:"
    row = lines[4].split()
    assert row[:3] == ["1", "1", "0x0001"]
    assert row[4] == "100000"  # registers 1-2 as a 32-bit value, high word first


def test_probe_reports_failures_and_bad_arguments(plc, closed_port):
    plc.bank.exception = 2
    with pytest.raises(CommandError, match="exception 2"):
        call_command("modbus_probe", f"127.0.0.1:{plc.port}", stdout=io.StringIO())
    with pytest.raises(CommandError, match="refused"):
        call_command("modbus_probe", f"127.0.0.1:{closed_port}", stdout=io.StringIO())
    with pytest.raises(CommandError, match="HOST:PORT"):
        call_command("modbus_probe", "no-port", stdout=io.StringIO())
    with pytest.raises(CommandError, match="TABLE:ADDRESS:COUNT"):
        call_command("modbus_probe", "127.0.0.1:502", "--read", "coils:0:1")


@pytest.mark.parametrize(
    "args,message",
    [
        (["127.0.0.1:50\u00b2"], "HOST:PORT"),  # "²": isdigit() yes, int() no
        (["127.0.0.1:502", "--read", "holding:\u00b2:1"], "TABLE:ADDRESS:COUNT"),
        (["127.0.0.1:502", "--read", "holding::1"], "TABLE:ADDRESS:COUNT"),
    ],
)
def test_probe_arguments_are_ascii_digits(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("modbus_probe", *args, stdout=io.StringIO())


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports, below the ephemeral range (so
    that no client connection takes one meanwhile)."""
    for _ in range(100):
        first = random.randrange(10_000, 30_000)
        sockets = []
        try:
            for port in range(first, first + count):
                probe = socket.socket()
                sockets.append(probe)
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()
    raise RuntimeError("no free ports")


class Simulator:
    def __init__(self, base_port: int, machines: int, speed: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable, "manage.py", "simulate_plcs", "--machines", str(machines),
                "--base-port", str(base_port), "--speed", str(speed), "--seconds", "60",
            ],
            cwd=ROOT,
            env={**os.environ, "SECRET_KEY": "simulator-test"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )  # fmt: skip
        self.output: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if not line:
                break
            self.output.append(line)
            if line.startswith("Serving"):
                return
        self.stop()
        pytest.fail("simulate_plcs did not start:\n" + "".join(self.output))

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def test_simulate_plcs_serves_machines_whose_counts_and_states_move():
    base = free_ports(3)
    simulator = Simulator(base, machines=3, speed=40)
    try:
        assert "LASER-01" in "".join(simulator.output)
        client = ModbusTcpClient("127.0.0.1", port=base, timeout=2)
        client.connect()
        first = client.read_holding_registers(0, count=3, device_id=1).registers
        seen_states = {first[0]}
        for _ in range(30):
            time.sleep(0.1)
            later = client.read_holding_registers(0, count=3, device_id=1).registers
            seen_states.add(later[0])
        client.close()
    finally:
        code = simulator.stop()

    assert later[1] << 16 | later[2] > first[1] << 16 | first[2]  # parts were made
    assert seen_states <= {1, 2, 3, 4} and 1 in seen_states
    assert code == 0


@pytest.mark.django_db
def test_seed_demo_connects_the_machines_idempotently_and_the_demo_moves():
    call_command("seed_demo", stdout=io.StringIO())
    first = io.StringIO()
    call_command("dumpdata", "shopfloor", stdout=first)
    call_command("seed_demo", stdout=io.StringIO())
    again = io.StringIO()
    call_command("dumpdata", "shopfloor", stdout=again)
    assert again.getvalue() == first.getvalue()
    scenario = load_scenario()
    assert MachineConnection.objects.count() == len(scenario.machines) == 8
    assert DeviceProfile.objects.count() == 3
    brake = MachineConnection.objects.get(machine__code="BRAKE-01")
    assert (brake.profile.code, brake.port) == ("SIM-PLC-16", 15022)

    base = free_ports(8)
    assert configure_demo_connections(base_port=base) == 8
    simulator = Simulator(base, machines=8, speed=30)
    loop = LoopThread(name="demo-poller")
    poller = GroupPoller("default", options=OPTIONS, loop=loop)
    try:
        for _ in range(12):
            poller.run_cycle()
            time.sleep(0.25)
    finally:
        poller.close()
        loop.stop()
        simulator.stop()

    assert PlcStatus.objects.filter(last_read_at__isnull=False).count() == 8
    moving = PlcStatus.objects.filter(pending_good__gt=0).count()
    assert moving >= 4, list(PlcStatus.objects.values("machine__code", "pending_good"))
    assert MachineStateEvent.objects.count() >= 4  # seed_demo set some states already
    assert not Machine.objects.filter(state__in=["offline", "unknown"]).exists()
