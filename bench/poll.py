"""PLC poll-cycle benchmark.

N simulated devices (pymodbus servers in a child process, each on its own loopback port,
each answering 10 holding registers) are polled by, in the same run and against the same
servers:

- floor: a minimal asyncio raw-socket Modbus TCP client written here (no decoding beyond
  the frame, no database), the best a Python client could do against these servers;
- MES poller: ``shopfloor.plc.poller.GroupPoller.run_cycle`` as the Celery task runs it,
  with change detection and its database writes (every device's counters move every
  cycle, 5% of devices change state every cycle);
- naive peer: one Celery task per device per cycle (a real worker process, prefork,
  ``--concurrency 2``, on the configured broker), each task loading the connection, reading
  the PLC with a cached synchronous pymodbus client and writing through the same services.

Each size also times one booking of the parts counted meanwhile with no operation running
(``book_pending_counts``: they go to unassigned counts).

Booking on operations, apart (--booking-sizes, default 1,000 and 5,000 counting machines,
8 to a work center): each runs an operation (made through the services, not timed) and has
pending counts in its PLC status (set by one UPDATE before each round, not timed); each
round times ``book_pending_counts`` over those machines beside a baseline in the same
round: a plain read of the pending status rows and the running operations they go to
(with their work orders), the least a booking must read. The booked totals are checked
afterwards.

Where the time goes (database, Python, waiting; ``bench.support.timesplit``) is printed for
the MES poller's cycles and for the bookings. Timings are reported, never asserted.

From an empty database: a fresh SQLite file under var/bench-poll/, or BENCH_DATABASE_URL /
--database-url (a PostgreSQL database is created when missing and migrated; it must hold no
machines, or pass --recreate to drop and re-create a ``mes_bench*`` database first).
Loopback only.

    python bench/poll.py                      # N = 100, 1000, 5000; booking 1000, 5000
    python bench/poll.py --sizes 100,1000 --cycles 20 --naive-cycles 1 --booking-sizes 1000
    python bench/poll.py --quick --recreate \
        --database-url postgres://postgres@127.0.0.1:5432/mes_bench_poll

--quick is the CI smoke run (20 devices, 3 cycles, the naive peer for one cycle, booking on
20 machines).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.support.server import (  # noqa: E402
    database_arguments,
    in_process_django,
    require_empty,
    sizes_of,
)
from bench.support.timesplit import TimeSplit  # noqa: E402

VAR = ROOT / "var" / "bench-poll"
QUICK = {
    "sizes": "20",
    "cycles": 3,
    "naive_cycles": 1,
    "booking_sizes": "20",
    "booking_repeat": 2,
}
FULL = {
    "sizes": "100,1000,5000",
    "cycles": 30,
    "naive_cycles": 2,
    "booking_sizes": "1000,5000",
    "booking_repeat": 5,
}
BOOKING_TARGET_MS = 300.0  # 1,000 counting machines (issue 11)

REGISTERS = 10
STATE_CODES = {"running": 1, "idle": 2}
REGISTER_MAP = {
    "state": {"table": "holding", "address": 0},
    "state_map": {"1": "running", "2": "idle"},
    "good_count": {"table": "holding", "address": 1, "words": 2, "word_order": "big"},
    "scrap_count": {"table": "holding", "address": 8, "words": 2, "word_order": "big"},
}
BASE_PORT = 20000  # below Linux's ephemeral range, so listeners never collide with clients
STATE_CHANGE_EVERY = 20  # reads: 5% of the devices change state per cycle


def raise_file_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- the servers (child process) --------------------------------------------------------------


def serve(first: int, count: int, base_port: int) -> None:
    """Child process: ``count`` pymodbus servers, devices ``first`` onwards; every read
    advances the good counter, and every 20th read of a device toggles its state (device i at
    reads i, i+20, ...)."""
    from shopfloor.plc.simulator import PlcServer, RegisterBank

    # Listeners, plus a connection from each client: the poller, the floor, and both
    # processes of the naive peer's worker.
    raise_file_limit(count * 5 + 256)

    def advance(index: int):
        def on_read(bank: RegisterBank) -> None:
            good = (bank.get("holding", 1, 2)[0] << 16 | bank.get("holding", 2)[0]) + 1
            bank.set_counter("holding", 1, good, words=2)
            if (bank.reads + index) % STATE_CHANGE_EVERY == 0:
                running = bank.get("holding", 0)[0] == STATE_CODES["running"]
                bank.set("holding", 0, [STATE_CODES["idle" if running else "running"]])

        return on_read

    async def main() -> None:
        servers = []
        for index in range(first, first + count):
            bank = RegisterBank(size=REGISTERS + 2)
            bank.set("holding", 0, [STATE_CODES["running"]])
            bank.on_read = advance(index)
            server = PlcServer(bank, port=base_port + index)
            await server.start()
            servers.append(server)
        # What lives on is not garbage: keep the collector from rescanning it (pauses of a
        # tenth of a second with 5000 servers).
        gc.collect()
        gc.freeze()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


class Servers:
    """The simulated PLCs, split over ``processes`` child processes."""

    def __init__(self, count: int, base_port: int, processes: int = 1) -> None:
        self.processes: list[subprocess.Popen] = []
        share = -(-count // processes)
        for first in range(0, count, share):
            args = ["--serve", str(min(share, count - first)), "--first", str(first)]
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, __file__, *args, "--base-port", str(base_port)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for process in self.processes:
            line = process.stdout.readline() if process.stdout else ""
            if line.strip() != "ready":
                self.stop()
                raise RuntimeError(f"simulated PLCs did not start: {line!r}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.stdin.close()  # type: ignore[union-attr]
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


# --- floor: a minimal raw-socket client ---------------------------------------------------------


class RawModbus(asyncio.Protocol):
    """Read holding registers 0-9 over a kept connection; one request in flight."""

    def __init__(self) -> None:
        self.buffer = b""
        self.waiter: asyncio.Future | None = None
        self.tid = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= 6:
            length = struct.unpack_from(">H", self.buffer, 4)[0]
            if len(self.buffer) >= 6 + length and self.waiter and not self.waiter.done():
                frame, self.buffer = self.buffer[: 6 + length], self.buffer[6 + length :]
                self.waiter.set_result(frame)

    async def read(self) -> tuple[int, ...]:
        self.tid = (self.tid + 1) & 0xFFFF
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(struct.pack(">HHHBBHH", self.tid, 0, 6, 1, 3, 0, REGISTERS))
        frame = await self.waiter
        tid, _, _, _, function, count = struct.unpack_from(">HHHBBB", frame)
        if tid != self.tid or function != 3 or count != 2 * REGISTERS:
            raise RuntimeError(f"unexpected answer {frame!r}")
        return struct.unpack_from(f">{REGISTERS}H", frame, 9)


async def floor_cycles(count: int, base_port: int, cycles: int) -> list[float]:
    loop = asyncio.get_running_loop()
    clients = []
    for index in range(count):
        _, protocol = await loop.create_connection(RawModbus, "127.0.0.1", base_port + index)
        clients.append(protocol)
    times = []
    for _ in range(cycles + 2):
        started = time.perf_counter()
        await asyncio.gather(*(c.read() for c in clients))
        times.append(time.perf_counter() - started)
    for client in clients:
        client.transport.close()
    return times[2:]


# --- database fixtures ------------------------------------------------------------------------


def create_devices(count: int, base_port: int, group: str) -> list[int]:
    from mes.models import Area, Machine, Site, WorkCenter
    from shopfloor.models import MachineConnection, PlcStatus

    site, _ = Site.objects.get_or_create(code="BENCH", defaults={"name": "Benchmark"})
    area, _ = Area.objects.get_or_create(code="BENCH", defaults={"name": "Bench", "site": site})
    wc, _ = WorkCenter.objects.get_or_create(code="BENCH", defaults={"name": "Bench", "area": area})
    machines = Machine.objects.bulk_create(
        Machine(code=f"BENCH-{group}-{i:05d}", name=f"Bench {i}", work_center=wc)
        for i in range(count)
    )
    if machines[0].pk is None:  # backends that do not return ids
        machines = list(Machine.objects.filter(code__startswith=f"BENCH-{group}-").order_by("code"))
    MachineConnection.objects.bulk_create(
        MachineConnection(
            machine=m,
            host="127.0.0.1",
            port=base_port + i,
            unit_id=1,
            poll_interval_ms=100,
            timeout_ms=5000,
            register_map=REGISTER_MAP,
            group=group,
        )
        for i, m in enumerate(machines)
    )
    PlcStatus.objects.bulk_create(PlcStatus(machine=m) for m in machines)
    return [m.pk for m in machines]


# --- the MES poller --------------------------------------------------------------------------


def poller_cycles(group: str, cycles: int, split: TimeSplit):
    from shopfloor.plc.poller import GroupPoller, PollerOptions

    poller = GroupPoller(group, options=PollerOptions.from_settings(wait=5.0))
    reports = []
    try:
        for index in range(cycles + 3):  # connect and baseline first
            next_due = poller.next_due()
            if next_due is not None:
                time.sleep(max(0.0, next_due - time.monotonic()))
            if index < 3:
                poller.run_cycle()
                continue  # connecting thousands of devices at once may time a few out
            with split.measure():
                report = poller.run_cycle()
            if report.failed:
                raise RuntimeError(f"poll failures in the benchmark: {report.as_dict()}")
            reports.append(report)
    finally:
        poller.close()
    return reports


# --- the naive peer: one Celery task per device per cycle ------------------------------------

_clients: dict = {}
MAX_NAIVE_CONNECTIONS = 400
NAIVE_QUEUE = f"bench-naive-{os.getpid()}"  # this run's own: never another run's worker


def naive_poll(connection_id: int) -> None:
    from django.db import transaction
    from django.utils import timezone
    from pymodbus.client import ModbusTcpClient
    from pymodbus.exceptions import ModbusException

    from shopfloor.models import MachineConnection, PlcStatus
    from shopfloor.plc.counters import counter_step, plausible_step
    from shopfloor.plc.registers import decode_reading, parse_register_map, plan_reads
    from shopfloor.plc.services import StateReading, record_machine_states

    conn = MachineConnection.objects.select_related("machine", "profile").get(pk=connection_id)
    regmap = parse_register_map(conn.effective_register_map())
    plan = plan_reads(regmap)
    key = (conn.host, conn.port)
    for attempt in (1, 2):  # a kept connection may have gone stale: reconnect once
        client = _clients.get(key)
        if client is None:
            # pymodbus's synchronous client select()s, so its sockets must stay below
            # descriptor 1024: keep at most a few hundred connections per process.
            while len(_clients) >= MAX_NAIVE_CONNECTIONS:
                _clients.pop(next(iter(_clients))).close()
            client = _clients[key] = ModbusTcpClient(conn.host, port=conn.port, timeout=2)
        try:
            values = [
                client.read_holding_registers(s.address, count=s.count, device_id=1).registers
                for s in plan.spans
            ]
            break
        except ModbusException:
            client.close()
            del _clients[key]
            if attempt == 2:
                raise
    reading = decode_reading(plan, regmap, values)
    now = timezone.now()
    with transaction.atomic():
        status = PlcStatus.objects.select_for_update().get(machine_id=conn.machine_id)
        bits = regmap.good_count.bits
        elapsed = (now - status.last_read_at).total_seconds() if status.last_read_at else 0
        step = counter_step(
            status.good_raw,
            reading.good,
            bits=bits,
            max_step=plausible_step(bits=bits, max_rate=50, elapsed_seconds=elapsed),
        )
        status.good_raw, status.scrap_raw = reading.good, reading.scrap
        status.pending_good += step.delta
        status.last_read_at = now
        status.save(update_fields=["good_raw", "scrap_raw", "pending_good", "last_read_at"])
    state = regmap.state_for(reading.state_code)
    if state != conn.machine.state:
        record_machine_states([StateReading(conn.machine_id, conn.machine.code, state, now)])


def register_naive_task():
    from mes.celery import app

    return app.task(name="bench.naive_poll", ignore_result=True)(naive_poll)


naive_task = None
if os.environ.get("MES_BENCH_WORKER"):
    naive_task = register_naive_task()


class NaiveWorker:
    def __init__(self, log: Path) -> None:
        self.log = log
        env = {
            **os.environ,
            "MES_BENCH_WORKER": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
        }
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "mes", "worker", "-I", "poll",
                "-Q", NAIVE_QUEUE, "--pool", "prefork", "--concurrency", "2",
                "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def naive_cycles(group: str, cycles: int, timeout: float = 90) -> list[float]:
    from django.utils import timezone

    from shopfloor.models import MachineConnection, PlcStatus

    task = register_naive_task()
    ids = list(MachineConnection.objects.filter(group=group).values_list("pk", flat=True))
    machine_ids = list(
        MachineConnection.objects.filter(group=group).values_list("machine_id", flat=True)
    )
    times = []
    for _ in range(cycles + 1):  # the first one warms the worker up
        since = timezone.now()
        started = time.perf_counter()
        for pk in ids:
            task.apply_async((pk,), queue=NAIVE_QUEUE)
        while True:
            done = PlcStatus.objects.filter(
                machine_id__in=machine_ids, last_read_at__gte=since
            ).count()
            if done >= len(ids):
                break
            if time.perf_counter() - started > timeout:
                print(f"naive peer: only {done} of {len(ids)} devices in {timeout} s", flush=True)
                return times[1:]
            time.sleep(0.02)
        times.append(time.perf_counter() - started)
    return times[1:]


# --- booking ------------------------------------------------------------------------------------


def time_booking(machine_ids: list[int]) -> tuple[float, int]:
    from shopfloor.plc.services import book_pending_counts

    started = time.perf_counter()
    summary = book_pending_counts(machine_ids=machine_ids)
    return time.perf_counter() - started, summary.booked + summary.unassigned


class BookingPlant:
    """Counting machines, 8 to a work center whose routing has one step there, each with
    an operation running on it (made through the services)."""

    PER_CENTER = 8

    def __init__(self) -> None:
        from django.contrib.auth import get_user_model

        from mes.models import Area, Site

        site = Site.objects.create(code="BOOK", name="Booking bench")
        self.area = Area.objects.create(code="BOOK", name="Booking", site=site)
        self.operator, _ = get_user_model().objects.get_or_create(username="bench-booking")
        self.routings: list = []  # one per work center
        self.machine_ids: list[int] = []
        self.operation_ids: list[int] = []

    def _routing(self, index: int):
        from mes.models import Product, Routing, RoutingStep, WorkCenter

        while len(self.routings) <= index:
            code = f"BOOK-{len(self.routings):04d}"
            wc = WorkCenter.objects.create(code=code, name=f"Cell {code}", area=self.area)
            product = Product.objects.create(code=code, name=f"Counted part {code}")
            routing = Routing.objects.create(code=code, product=product, active=True)
            RoutingStep.objects.create(routing=routing, sequence=10, name="Make", work_center=wc)
            self.routings.append((routing, wc))
        return self.routings[index]

    def grow(self, count: int) -> None:
        from datetime import timedelta

        from django.utils import timezone

        from mes import services
        from mes.models import Machine
        from shopfloor.models import PlcStatus

        for i in range(len(self.machine_ids), count):
            routing, wc = self._routing(i // self.PER_CENTER)
            machine = Machine.objects.create(
                code=f"BOOK-M{i:05d}", name=f"Counter {i}", work_center=wc
            )
            PlcStatus.objects.create(machine=machine)
            wo = services.create_work_order(
                number=f"BOOK-{i:05d}",
                product=routing.product,
                routing=routing,
                quantity=10**6,
                due_date=timezone.now() + timedelta(days=7),
                actor=self.operator,
                release=True,
            )
            op = services.start_operation(
                wo.operations.get(), operator=self.operator, machine=machine
            )
            self.machine_ids.append(machine.pk)
            self.operation_ids.append(op.pk)

    def count(self) -> tuple[int, int]:
        """Pending counts on every machine (3-9 good, 0-1 scrap); their totals."""
        from django.db.models import F, Sum

        from shopfloor.models import PlcStatus

        statuses = PlcStatus.objects.filter(machine_id__in=self.machine_ids)
        statuses.update(pending_good=F("machine_id") % 7 + 3, pending_scrap=F("machine_id") % 2)
        totals = statuses.aggregate(good=Sum("pending_good"), scrap=Sum("pending_scrap"))
        return totals["good"], totals["scrap"]

    def read_pending(self) -> int:
        """The baseline: the pending status rows, and the running operations (with their
        work orders) they would be booked on."""
        from django.db.models import Q

        from mes.choices import OperationStatus
        from mes.models import Operation
        from shopfloor.models import PlcStatus

        pending = list(
            PlcStatus.objects.filter(machine_id__in=self.machine_ids)
            .filter(Q(pending_good__gt=0) | Q(pending_scrap__gt=0))
            .order_by("machine_id")
            .values_list("machine_id", "pending_good", "pending_scrap")
        )
        operations = list(
            Operation.objects.filter(
                machine_id__in=[row[0] for row in pending], status=OperationStatus.RUNNING
            ).select_related("work_order")
        )
        return len(operations)

    def booked(self) -> tuple[int, int]:
        from django.db.models import Sum

        from mes.models import Operation

        totals = Operation.objects.filter(pk__in=self.operation_ids).aggregate(
            good=Sum("quantity_good"), scrap=Sum("quantity_scrap")
        )
        return int(totals["good"] or 0), int(totals["scrap"] or 0)


def booking_bench(sizes: list[int], repeat: int) -> list[dict]:
    """Book pending counts of N counting machines, beside reading what it books."""
    from shopfloor.plc.services import book_pending_counts

    plant = BookingPlant()
    rows = []
    expected = (0, 0)
    for size in sizes:
        started = time.perf_counter()
        plant.grow(size)
        fill_s = time.perf_counter() - started
        expected = plant.booked()
        split = TimeSplit()
        booking, baseline = [], []
        for _ in range(repeat):
            good, scrap = plant.count()
            began = time.perf_counter()
            read = plant.read_pending()
            baseline.append(time.perf_counter() - began)
            if read != size:
                raise SystemExit(f"the baseline read {read} running operations, not {size}")
            with split.measure():
                began = time.perf_counter()
                summary = book_pending_counts(machine_ids=plant.machine_ids)
                booking.append(time.perf_counter() - began)
            if (summary.booked, summary.unassigned, summary.good, summary.scrap) != (
                size,
                0,
                good,
                scrap,
            ):
                raise SystemExit(
                    f"booking {size} machines with {good} good and {scrap} scrap pending "
                    f"gave {summary}"
                )
            expected = (expected[0] + good, expected[1] + scrap)
        if plant.booked() != expected:
            raise SystemExit(
                f"the operations hold {plant.booked()} (good, scrap), expected {expected}"
            )
        row = {"n": size, "booking": booking, "baseline": baseline, "split": split}
        row["fill"] = fill_s
        print_booking(row)
        rows.append(row)
    return rows


def print_booking(row: dict) -> None:
    book, base = percentile(row["booking"], 50), percentile(row["baseline"], 50)
    print(
        f"booking N={row['n']:>5} counting machines: book_pending_counts p50 {fmt_ms(book)} ms "
        f"(max {fmt_ms(max(row['booking']))}), baseline read p50 {fmt_ms(base)} ms, "
        f"ratio {book / base:5.1f}; {len(row['booking'])} rounds (operations made in "
        f"{row['fill']:.0f} s)\n"
        f"         booking: {row['split'].line()}",
        flush=True,
    )


# --- main -------------------------------------------------------------------------------------


def choose_broker(wanted: str | None) -> None:
    """The naive peer gets the production broker when there is one: Redis on loopback (or
    CELERY_BROKER_URL, or --broker); else the embedded filesystem transport."""
    if wanted:
        os.environ["CELERY_BROKER_URL"] = wanted
    elif not os.environ.get("CELERY_BROKER_URL"):
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", 6379)) == 0:
                os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/14"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def run_size(count: int, args, rows: list) -> None:
    from django.conf import settings

    group = f"bench{count}"
    servers = Servers(count, args.base_port, args.server_processes)
    split = TimeSplit()
    try:
        machine_ids = create_devices(count, args.base_port, group)
        floor = asyncio.run(floor_cycles(count, args.base_port, args.cycles))
        reports = poller_cycles(group, args.cycles, split)
        floor += asyncio.run(floor_cycles(count, args.base_port, args.cycles))
        booking_unassigned = time_booking(machine_ids)
        naive: list[float] = []
        if args.naive_cycles and count <= args.naive_max:
            naive = naive_cycles(group, args.naive_cycles if count < 5000 else 1)
    finally:
        servers.stop()
    poll = [r.seconds for r in reports]
    rows.append(
        {
            "n": count,
            "floor": floor,
            "poll": poll,
            "read": [r.read_seconds for r in reports],
            "write": [r.write_seconds for r in reports],
            "changes": statistics.mean(r.state_changes for r in reports),
            "naive": naive,
            "booking_unassigned": booking_unassigned,
            "split": split,
            "db": settings.DATABASES["default"]["ENGINE"],
        }
    )
    print_row(rows[-1])


def print_row(row: dict) -> None:
    n, floor, poll = row["n"], row["floor"], row["poll"]
    f50, f99 = percentile(floor, 50), percentile(floor, 99)
    p50, p99 = percentile(poll, 50), percentile(poll, 99)
    print(
        f"N={n:>5}  floor p50/p99 {fmt_ms(f50)} {fmt_ms(f99)} ms   "
        f"MES poller p50/p99 {fmt_ms(p50)} {fmt_ms(p99)} ms  "
        f"(read {fmt_ms(percentile(row['read'], 50))}, db {fmt_ms(percentile(row['write'], 50))}"
        f" ms p50; {row['changes']:.0f} state changes/cycle)   "
        f"ratio p50 {p50 / f50:4.2f} p99 {p99 / f99:4.2f}",
        flush=True,
    )
    if row["naive"]:
        naive = row["naive"]
        print(
            f"         naive (task per device) p50 {fmt_ms(percentile(naive, 50))} ms "
            f"(max {fmt_ms(max(naive))} ms, {len(naive)} cycles) = "
            f"{n / percentile(naive, 50):.0f} devices/s, "
            f"{percentile(naive, 50) / p50:.0f}x the MES poller",
            flush=True,
        )
    print(f"         MES poller cycle: {row['split'].line()}")
    seconds, machines = row["booking_unassigned"]
    print(
        f"         booking (every few s, off the cycle): {machines} machines, no operation "
        f"running (unassigned counts), {seconds * 1000:.0f} ms",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="devices polled, comma separated (100,1000,5000)")
    parser.add_argument("--cycles", type=int, help="timed cycles per size (30)")
    parser.add_argument("--naive-cycles", type=int, help="0 skips the naive peer (2)")
    parser.add_argument("--naive-max", type=int, default=5000, help="largest N for the peer")
    parser.add_argument(
        "--booking-sizes", help="counting machines booked, comma separated, '' skips (1000,5000)"
    )
    parser.add_argument("--booking-repeat", type=int, help="timed bookings per size (5)")
    parser.add_argument("--base-port", type=int, default=BASE_PORT)
    parser.add_argument("--broker", help="Celery broker URL for the naive peer")
    parser.add_argument(
        "--server-processes", type=int, default=1, help="processes serving the simulated PLCs"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    database_arguments(parser, quick="20 devices, 3 cycles, booking 20 machines")
    args = parser.parse_args()
    if args.serve:
        serve(args.first, args.serve, args.base_port)
        return 0
    sizes_of(args, QUICK, FULL)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    booking_sizes = sorted(int(s) for s in args.booking_sizes.split(",") if s.strip())
    raise_file_limit(max(sizes, default=0) * 2 + 512)
    choose_broker(args.broker)
    started = time.perf_counter()
    in_process_django(args.database_url, VAR, secret="bench-only-poll", recreate=args.recreate)
    from django.db import connection

    from mes.models import Machine

    require_empty(Machine.objects.exists(), "machines")
    from django.conf import settings

    print(
        f"PLC poll cycle, {REGISTERS} holding registers per device, loopback; database "
        f"{connection.vendor}; naive peer's broker "
        f"{settings.CELERY_BROKER_URL.split('//')[0]}//; {os.cpu_count()} CPUs",
        flush=True,
    )
    rows: list = []
    worker_log = Path(tempfile.gettempdir()) / f"mes-bench-naive-worker-{os.getpid()}.log"
    worker = NaiveWorker(worker_log) if args.naive_cycles and sizes else None
    try:
        for count in sizes:
            run_size(count, args, rows)
    finally:
        if worker is not None:
            worker.stop()
            print(f"(naive peer's worker log: {worker_log})")
    booked = booking_bench(booking_sizes, args.booking_repeat) if booking_sizes else []
    target = [r for r in rows if r["n"] == 1000]
    if target:
        row = target[0]
        p99 = percentile(row["poll"], 99)
        ratio = p99 / percentile(row["floor"], 99)
        print(f"target N=1000: p99 {p99 * 1000:.0f} ms (< 250) and ratio {ratio:.2f} (<= 2.5)")
    big = [r for r in rows if r["n"] == 5000]
    if big:
        print(f"target N=5000: p99 {percentile(big[0]['poll'], 99) * 1000:.0f} ms (< 1000)")
    print(TimeSplit.footnote(connection.vendor))
    for row in booked:
        if row["n"] == 1000:
            p50 = percentile(row["booking"], 50) * 1000
            print(
                f"target booking 1,000 machines < {BOOKING_TARGET_MS:.0f} ms: "
                f"{'met' if p50 < BOOKING_TARGET_MS else 'NOT met'} (p50 {p50:.0f} ms)"
            )
    print(
        f"targets are informational, never asserted; run took {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
