"""OEE benchmark: OEE of every machine over 30 days and over one shift, beside a plain
COUNT(*) of the same state events.

A plant of --machines machines (default 100, four per work center, one site on three shifts
Monday to Friday and two on Saturday, Europe/Berlin) with --days days of history (default
30) ending now: each machine changes state about every 2 minutes (running most of the time;
idle, down, setup, offline now and then), about 2 million state events for 100 machines
over 30 days; an operation in progress on every machine throughout; a production
confirmation per machine and hour (the counts); a downtime record for every down period,
a third of them with a planned reason. The history is bulk inserted (COPY on PostgreSQL),
then the rollups are built from it with ``mes.performance.rollups.rebuild`` (the rules
the live path applies as events arrive); both are timed and reported, not measured.

A fresh SQLite database under var/bench-oee/ (or BENCH_DATABASE_URL / --database-url: a
PostgreSQL database is created when missing and migrated; it must be empty, or pass
--recreate to drop and re-create a ``mes_bench*`` database first).

Measured in-process, p50 and p99, each round interleaving them:

1. OEE of every machine over the whole range (``mes.performance.selectors.figures``,
   level machine) and of the site;
2. OEE of every machine over one shift (the last complete early shift);
3. baseline: ``SELECT count(*)`` of the state events in the same range (a plain scan of
   what the rollups summarise).

4. the plant board's server time (the polled partial, in-process through Django's test
   client) for the 30 machines of one area, beside a plain SELECT of those machines.

Targets on PostgreSQL: whole range under 500 ms, one shift under 100 ms, the board p95
under 150 ms. Timings are reported, never asserted.

    python bench/oee.py [--machines 100] [--days 30] [--repeat 20] [--quick]
                        [--database-url postgres://postgres@127.0.0.1:5432/mes_bench_oee]
                        [--recreate]

--quick is the CI smoke run (10 machines, 2 days). Loopback only.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.support.server import in_process_django  # noqa: E402

VAR = ROOT / "var" / "bench-oee"
STATES = ["running", "idle", "down", "setup", "offline"]
WEIGHTS = [70, 14, 7, 6, 3]
CHANGE = timedelta(minutes=2)
CYCLE_SECONDS = 20
WHOLE_TARGET_MS, SHIFT_TARGET_MS, BOARD_TARGET_MS = 500.0, 100.0, 150.0
QUICK = {"machines": 10, "days": 2, "repeat": 5}
FULL = {"machines": 100, "days": 30, "repeat": 20}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


# --- The plant and its history --------------------------------------------------------------


def build_plant(machines: int, start: datetime) -> dict:
    from datetime import time as tod
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from mes.calendars.models import Shift, ShiftBreak
    from mes.choices import OperationStatus, WorkOrderStatus
    from mes.models import (
        Area,
        Machine,
        Operation,
        Product,
        Routing,
        RoutingStep,
        Site,
        WorkCenter,
        WorkOrder,
    )

    site = Site.objects.create(code="BO", name="OEE bench plant", time_zone="Europe/Berlin")
    week = {day: True for day in ("monday", "tuesday", "wednesday", "thursday", "friday")}
    for code, begin, end, pause, saturday in (
        ("early", 6, 14, 10, True),
        ("late", 14, 22, 18, True),
        ("night", 22, 6, 2, False),
    ):
        shift = Shift.objects.create(
            site=site,
            code=code,
            name=code.title(),
            start=tod(begin),
            end=tod(end),
            saturday=saturday,
            **week,
        )
        ShiftBreak.objects.create(shift=shift, start=tod(pause), end=tod(pause, 30))
    # The board's area: the first 30 machines (the board's target size); the rest apart.
    board_area = Area.objects.create(code="BO-A", name="Machining", site=site)
    other = Area.objects.create(code="BO-B", name="Assembly", site=site)
    centers = [
        WorkCenter.objects.create(
            code=f"BO-WC{i + 1:02d}", name=f"Cell {i + 1}", area=board_area if i < 8 else other
        )
        for i in range(max(1, machines // 4))
    ]
    product = Product.objects.create(code="BO-P", name="Part", unit="pcs")
    routing = Routing.objects.create(code="BO-R", product=product, version=1, active=True)
    RoutingStep.objects.create(
        routing=routing,
        sequence=10,
        name="Machine",
        work_center=centers[0],
        cycle_seconds=Decimal(CYCLE_SECONDS),
    )
    machine_list = [
        Machine.objects.create(
            code=f"BO-M{i + 1:03d}", name=f"Machine {i + 1}", work_center=centers[i % len(centers)]
        )
        for i in range(machines)
    ]
    operations = []
    for i, machine in enumerate(machine_list):
        wo = WorkOrder.objects.create(
            number=f"BO-{i + 1:04d}",
            product=product,
            routing=routing,
            quantity=10**6,
            due_date=start + timedelta(days=60),
            status=WorkOrderStatus.IN_PROGRESS,
            actual_start=start,
        )
        operations.append(
            Operation.objects.create(
                work_order=wo,
                sequence=10,
                name="Machine",
                work_center=machine.work_center,
                machine=machine,
                status=OperationStatus.RUNNING,
                actual_start=start,
                cycle_seconds=Decimal(CYCLE_SECONDS),
            )
        )
    user = get_user_model().objects.create_user("bo-supervisor")
    user.groups.add(Group.objects.get(name="supervisor"))
    return {"site": site, "machines": machine_list, "operations": operations, "user": user}


def history(plant: dict, start: datetime, end: datetime, seed: int = 20261202) -> dict:
    """State events, downtime records and confirmations, bulk inserted."""
    from django.db import connection

    from mes.models import Machine
    from shopfloor.models import DowntimeReason

    rng = random.Random(seed)
    reasons = list(DowntimeReason.objects.filter(parent__isnull=False))
    planned = [r for r in reasons if r.planned] or reasons
    unplanned = [r for r in reasons if not r.planned] or reasons
    events, stops, confirmations = [], [], []
    last = {}
    for machine, op in zip(plant["machines"], plant["operations"], strict=True):
        at, state = start, "running"
        down_since = None
        while at < end:
            events.append((machine.pk, state, at, f"plc:{machine.code}", ""))
            if state == "down":
                down_since = at
            step = CHANGE + timedelta(seconds=rng.randint(-30, 30))
            at += step
            new = rng.choices(STATES, WEIGHTS)[0]
            while new == state:
                new = rng.choices(STATES, WEIGHTS)[0]
            if state == "down" and down_since is not None:
                choice = rng.choice(planned if rng.random() < 1 / 3 else unplanned)
                stops.append((machine.pk, op.pk, down_since, min(at, end), choice))
                down_since = None
            state = new
        last[machine.pk] = events[-1]
        hour = start
        while hour < end:
            good = rng.randint(50, 70)
            scrap = rng.randint(0, 4)
            confirmations.append((op, hour + timedelta(minutes=59), good, scrap))
            hour += timedelta(hours=1)

    table = "shopfloor_machinestateevent"
    columns = ("machine_id", "state", "started_at", "source", "reason")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            raw = cursor.cursor
            with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in events:
                    copy.write_row(row)
    else:
        adapt = connection.ops.adapt_datetimefield_value
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES (%s, %s, %s, %s, %s)",
                [(m, s, adapt(a), src, r) for m, s, a, src, r in events],
            )
    from shopfloor.models import DowntimeRecord

    DowntimeRecord.objects.bulk_create(
        [
            DowntimeRecord(
                machine_id=m,
                operation_id=o,
                cause="down",
                started_at=a,
                ended_at=b,
                reason_choice=c,
                reason=f"{c.path} ({'planned' if c.planned else 'unplanned'})",
                reason_by=plant["user"],
                reason_at=b,
            )
            for m, o, a, b, c in stops
        ],
        batch_size=5000,
    )
    from mes.models import ConfirmationKind, ProductionConfirmation

    # seq from 1 (an empty database; nothing is confirmed through the services here).
    first = 1
    ProductionConfirmation.objects.bulk_create(
        [
            ProductionConfirmation(
                seq=first + i,
                work_order_id=op.work_order_id,
                operation=op,
                operation_sequence=10,
                kind=ConfirmationKind.PROGRESS,
                quantity_good=good,
                quantity_scrap=scrap,
                labor_seconds=3600,
                machine_seconds=3600,
                occurred_at=at,
            )
            for i, (op, at, good, scrap) in enumerate(confirmations)
        ],
        batch_size=5000,
    )
    for machine_id, (_m, state, at, _s, _r) in last.items():
        Machine.objects.filter(pk=machine_id).update(state=state, state_since=at)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {"events": len(events), "stops": len(stops), "confirmations": len(confirmations)}


# --- Measuring ------------------------------------------------------------------------------


def measure(plant: dict, start: datetime, end: datetime, repeat: int) -> dict:
    from django.db import connection

    from mes.calendars.selectors import calendar_of_site
    from mes.performance.selectors import figures

    calendar = calendar_of_site(plant["site"])
    early = [s for s in calendar.shifts(end - timedelta(days=7), end) if s.code == "early"]
    shift = next(s for s in reversed(early) if s.end <= end)
    machines = len(plant["machines"])

    def whole() -> None:
        rows = figures("machine", start=start, end=end, now=end)
        assert len(rows) == machines, len(rows)

    def site() -> None:
        (row,) = figures("site", start=start, end=end, now=end)
        assert row.machines == machines

    def one_shift() -> None:
        rows = figures("machine", start=shift.start, end=shift.end, now=end)
        assert len(rows) == machines

    def count_range(lo: datetime, hi: datetime) -> Callable[[], None]:
        adapt = connection.ops.adapt_datetimefield_value

        def run() -> None:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM shopfloor_machinestateevent "
                    "WHERE started_at >= %s AND started_at < %s",
                    [adapt(lo), adapt(hi)],
                )
                cursor.fetchone()

        return run

    from django.test import Client

    from mes.models import Machine

    board_client = Client()
    board_client.force_login(plant["user"])
    on_board = Machine.objects.filter(work_center__area__code="BO-A").count()

    def board() -> None:
        response = board_client.get("/board/?area=BO-A", HTTP_HX_REQUEST="true")
        assert response.status_code == 200, response.status_code

    def board_rows() -> None:
        list(
            Machine.objects.filter(work_center__area__code="BO-A")
            .select_related("work_center__area__site")
            .values_list("code", "state", "state_since", "work_center__area__site__name")
        )

    work = {
        f"board, {on_board} machines (server)": board,
        "SELECT of the board's machines": board_rows,
        "OEE, every machine, whole range": whole,
        "OEE, the site, whole range": site,
        "COUNT(*) of the range's events": count_range(start, end),
        "OEE, every machine, one shift": one_shift,
        "COUNT(*) of the shift's events": count_range(shift.start, shift.end),
    }
    for fn in work.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(repeat):
        for name, fn in work.items():
            began = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - began) * 1000)
    (sample,) = figures("site", start=start, end=end, now=end)
    return {"times": times, "shift": shift, "sample": sample, "on_board": on_board}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, help="machines (100)")
    parser.add_argument("--days", type=int, help="days of history (30)")
    parser.add_argument("--repeat", type=int, help="timed rounds (20)")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 10 machines, 2 days")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument(
        "--recreate", action="store_true", help="drop and re-create a mes_bench* PostgreSQL db"
    )
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    in_process_django(args.database_url, VAR, secret="bench-only-oee", recreate=args.recreate)

    from django.db import connection

    from mes.models import Machine
    from mes.performance import rollups
    from mes.performance.oee import bucket_of

    if Machine.objects.exists():
        sys.exit(
            "The bench database already holds machines; give it an empty one "
            "(or --recreate a mes_bench* PostgreSQL database)."
        )
    end = bucket_of(datetime.now(UTC)) - timedelta(minutes=15)
    start = end - timedelta(days=args.days)
    vendor = connection.vendor
    print(f"OEE bench on {vendor}: {args.machines} machines, {args.days} days", flush=True)
    began = time.perf_counter()
    plant = build_plant(args.machines, start)
    counts = history(plant, start, end)
    fill_s = time.perf_counter() - began
    began = time.perf_counter()
    buckets = rollups.rebuild(start=start, end=end)
    rebuild_s = time.perf_counter() - began
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE performance_machinebucket")
    print(
        f"history: {counts['events']:,} state events, {counts['stops']:,} downtime records, "
        f"{counts['confirmations']:,} confirmations, bulk inserted in {fill_s:.1f} s; "
        f"rollups rebuilt from it in {rebuild_s:.1f} s ({buckets:,} machine quarter hours)",
        flush=True,
    )
    result = measure(plant, start, end, args.repeat)
    times, shift = result["times"], result["shift"]
    print(
        f"\n{'':34} {'p50 ms':>9} {'p99 ms':>9} {'vs base p50':>13}   "
        f"(one shift: {shift.start:%a %d %b %H:%M}-{shift.end:%H:%M} UTC)"
    )
    baselines = {
        next(n for n in times if n.startswith("board")): "SELECT of the board's machines",
        "OEE, every machine, whole range": "COUNT(*) of the range's events",
        "OEE, the site, whole range": "COUNT(*) of the range's events",
        "OEE, every machine, one shift": "COUNT(*) of the shift's events",
    }
    for name, values in times.items():
        base = baselines.get(name)
        ratio = ""
        if base:
            ratio = f"{statistics.median(values) / statistics.median(times[base]):12.2f}x"
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(f"{name:36} {p50:9.1f} {p99:9.1f} {ratio:>13}")
    whole = statistics.median(times["OEE, every machine, whole range"])
    one = statistics.median(times["OEE, every machine, one shift"])
    k = result["sample"].kpis
    print(
        f"\nsite over the range: OEE {k.oee:.3f} = availability {k.availability:.3f} x "
        f"performance {k.performance:.3f} x quality {k.quality:.3f}; "
        + ", ".join(f"{name} {seconds / 3600:,.0f} h" for name, seconds in k.losses.items())
    )
    board_times = next(v for n, v in times.items() if n.startswith("board"))
    board_p95 = percentile(board_times, 0.95)
    print(
        f"targets ({vendor}): board p95 < {BOARD_TARGET_MS:.0f} ms: "
        f"{'met' if board_p95 < BOARD_TARGET_MS else 'NOT met'} (p95 {board_p95:.0f} ms, "
        f"{result['on_board']} machines); whole range < {WHOLE_TARGET_MS:.0f} ms: "
        f"{'met' if whole < WHOLE_TARGET_MS else 'NOT met'} (p50 {whole:.0f} ms); "
        f"one shift < {SHIFT_TARGET_MS:.0f} ms: "
        f"{'met' if one < SHIFT_TARGET_MS else 'NOT met'} (p50 {one:.0f} ms)"
    )


if __name__ == "__main__":
    main()
