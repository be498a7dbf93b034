"""API benchmark: throughput and latency of the ERP API beside its baselines, in one run.

From an empty database (a fresh SQLite file under var/bench-api/, or BENCH_DATABASE_URL /
--database-url: a PostgreSQL database is created when missing and migrated; it must hold no
work orders, or pass --recreate to drop and re-create a ``mes_bench*`` database first):
a plant of 8 work centers of 4 machines and 12 products, then --orders work orders (default
100,000) of 4 operations each, built in Python and bulk inserted (COPY on PostgreSQL) with
their stored representation rendered by the API's own ``work_order_representation`` (a
sample is re-rendered from the database and compared, so the fill cannot drift from what
the services store).

Served by gunicorn with 2 workers on 127.0.0.1; load from a separate process (keep-alive
HTTP/1.1 connections, asyncio). For each target it prints requests/s, p50 and p99, and
ratios against
- the framework floor: a plain Django view returning a constant JSON body, and
- the peer: a straightforward DRF ModelSerializer list of the same rows.

Where the time goes: each target is also requested in-process (Django's test client, no
server; --in-process times), with the split of its time between database, Python and
waiting (``bench.support.timesplit``).

    python bench/api.py [--orders 100000] [--seconds 8] [--concurrency 8] [--quick]
                        [--database-url postgres://postgres@127.0.0.1:5432/mes_bench_api]
                        [--recreate]

--quick is the CI smoke run (300 orders, 0.3 s per target). Machines here are
noisy: read the ratios, not the absolute numbers. Targets are informational, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.support.server import (  # noqa: E402
    database_arguments,
    gunicorn,
    in_process_django,
    require_empty,
    sizes_of,
)
from bench.support.timesplit import TimeSplit  # noqa: E402

VAR = ROOT / "var" / "bench-api"
QUICK = {"orders": 300, "seconds": 0.3, "warmup": 0.1, "concurrency": 4, "in_process": 3}
FULL = {"orders": 100_000, "seconds": 8.0, "warmup": 1.0, "concurrency": 8, "in_process": 100}
CHUNK = 5000  # orders built and inserted at a time

# --- load generator (runs in its own process) -------------------------------------------------


async def _connection(host, port, path, token, deadline, latencies, statuses):
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()
    reader = writer = None
    while time.perf_counter() < deadline:
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
        start = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
        }
        await reader.readexactly(int(headers.get("content-length", "0")))
        latencies.append(time.perf_counter() - start)
        statuses[status] = statuses.get(status, 0) + 1
        if headers.get("connection", "").lower() == "close":
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def _load(args) -> tuple[list[float], dict[int, int], float]:
    host, port, path, token, seconds, concurrency = args

    async def main():
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            *(
                _connection(host, port, path, token, deadline, latencies, statuses)
                for _ in range(concurrency)
            )
        )
        return latencies, statuses, time.perf_counter() - start

    return asyncio.run(main())


def measure(pool, port, path, token, args) -> dict:
    pool.apply(_load, (("127.0.0.1", port, path, token, args.warmup, args.concurrency),))
    latencies, statuses, elapsed = pool.apply(
        _load, (("127.0.0.1", port, path, token, args.seconds, args.concurrency),)
    )
    if set(statuses) != {200}:
        raise SystemExit(f"{path}: unexpected statuses {statuses}")
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "n": len(latencies),
    }


def in_process(path: str, token: str, repeat: int) -> tuple[float, TimeSplit]:
    """p50 in ms of ``repeat`` in-process requests (after one warm-up), and their split."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/json")
    client.get(path)
    split, times = TimeSplit(), []
    for _ in range(repeat):
        with split.measure():
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: HTTP {response.status_code} in-process")
    return statistics.median(times), split


# --- data -----------------------------------------------------------------------------------


def master_data() -> tuple[list, list, list]:
    """A plant like the demo's: 8 work centers of 4 machines, 12 products with a routing."""
    from mes.models import Area, Machine, Product, Routing, Site, WorkCenter

    site = Site.objects.create(code="BA", name="API bench plant")
    area = Area.objects.create(code="BA-A", name="Shop", site=site)
    centers = [
        WorkCenter.objects.create(code=f"BA-WC{c + 1}", name=f"Cell {c + 1}", area=area)
        for c in range(8)
    ]
    machines = [
        Machine.objects.create(code=f"BA-M{c + 1}-{m + 1}", name=f"Machine {m + 1}", work_center=wc)
        for c, wc in enumerate(centers)
        for m in range(4)
    ]
    routings = []
    for p in range(12):
        product = Product.objects.create(code=f"BA-P{p + 1:02d}", name=f"Part {p + 1}")
        routings.append(
            Routing.objects.create(code=f"BA-R{p + 1:02d}", product=product, active=True)
        )
    return routings, centers, machines


def populate(orders: int) -> None:
    """A plant, then ``orders`` orders x 4 operations in bulk, each with the representation
    the services store."""
    from datetime import timedelta
    from decimal import Decimal

    from django.db import connection
    from django.utils import timezone

    from bench.support import bulk
    from mes.choices import OperationStatus, Priority, WorkOrderStatus
    from mes.models import Operation, WorkOrder
    from mes.selectors import render_json, work_order_representation

    routings, centers, machines = master_data()
    cycle = [
        WorkOrderStatus.RELEASED,
        WorkOrderStatus.IN_PROGRESS,
        WorkOrderStatus.COMPLETED,
        WorkOrderStatus.PLANNED,
    ]
    now = timezone.now()
    order_ids = iter(bulk.next_ids(WorkOrder, orders))
    operation_ids = iter(bulk.next_ids(Operation, orders * 4))

    def operations(wo: WorkOrder, g: int) -> list[Operation]:
        # Planned: all pending; released: the first ready; in progress: the first done, the
        # second running on a machine; completed: all done.
        done = {"planned": 0, "released": 0, "in_progress": 1, "completed": 4}[wo.status]
        ops = []
        for s in range(4):
            if s < done:
                status = OperationStatus.DONE
            elif s == done and wo.status == WorkOrderStatus.IN_PROGRESS:
                status = OperationStatus.RUNNING
            elif s == done and wo.status == WorkOrderStatus.RELEASED:
                status = OperationStatus.READY
            else:
                status = OperationStatus.PENDING
            started = status in (OperationStatus.DONE, OperationStatus.RUNNING)
            ops.append(
                Operation(
                    id=next(operation_ids),
                    work_order=wo,
                    sequence=(s + 1) * 10,
                    name=f"Step {s + 1}",
                    work_center=centers[(g + s) % len(centers)],
                    machine=machines[(g + s) % len(machines)] if started else None,
                    status=status,
                    quantity_good=wo.quantity if status == OperationStatus.DONE else g % 50,
                    setup_seconds=300,
                    cycle_seconds=Decimal("12.5"),
                    instructions="Check the drawing.",
                    actual_start=wo.actual_start + timedelta(hours=s) if started else None,
                    actual_end=(
                        wo.actual_start + timedelta(hours=s, minutes=50)
                        if status == OperationStatus.DONE
                        else None
                    ),
                    updated_at=wo.updated_at,
                    version=2,
                )
            )
        return ops

    for first in range(1, orders + 1, CHUNK):
        work_orders, all_operations = [], []
        for g in range(first, min(orders, first + CHUNK - 1) + 1):
            routing = routings[g % len(routings)]
            status = cycle[g % 4]
            started = status in (WorkOrderStatus.IN_PROGRESS, WorkOrderStatus.COMPLETED)
            completed = status == WorkOrderStatus.COMPLETED
            quantity = Decimal(100 + g % 400)
            wo = WorkOrder(
                id=next(order_ids),
                number=f"B-{g:07d}",
                product=routing.product,
                routing=routing,
                quantity=quantity,
                due_date=now + timedelta(hours=g % 240),
                priority=Priority.RUSH if g % 9 == 0 else Priority.NORMAL,
                status=status,
                quantity_good=quantity if completed else Decimal(0),
                quantity_scrap=Decimal(g % 7) if started else Decimal(0),
                actual_start=now - timedelta(days=2) if started else None,
                actual_end=now - timedelta(hours=2) if completed else None,
                created_at=now - timedelta(days=3),
                updated_at=now - timedelta(seconds=g),
                version=3,
            )
            ops = operations(wo, g)
            wo.rendered = render_json(work_order_representation(wo, ops))
            work_orders.append(wo)
            all_operations += ops
        bulk.insert(work_orders)
        bulk.insert(all_operations)
    bulk.reset_sequences(WorkOrder, Operation)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    check_rendered(orders)


def check_rendered(orders: int) -> None:
    """A sample of the stored representations equals what the API renders from the rows."""
    from mes.models import WorkOrder
    from mes.selectors import render_json, work_order_representation

    numbers = {f"B-{g:07d}" for g in (1, 2, 3, 4, orders)}
    numbers |= {f"B-{g:07d}" for g in range(1, orders + 1, max(1, orders // 23))}
    for wo in WorkOrder.objects.filter(number__in=numbers).select_related("product", "routing"):
        if wo.rendered != render_json(work_order_representation(wo)):
            raise SystemExit(
                f"{wo.number}: the bench stored\n{wo.rendered}\nbut the API renders\n"
                f"{render_json(work_order_representation(wo))}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, help="work orders (100000)")
    parser.add_argument("--seconds", type=float, help="seconds of load per target (8)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up load per target (1)")
    parser.add_argument("--concurrency", type=int, help="client connections (8)")
    parser.add_argument("--in-process", type=int, help="in-process requests per target (100)")
    database_arguments(parser, quick="300 orders, 0.3 s per target")
    args = sizes_of(parser.parse_args(), QUICK, FULL)

    started = time.perf_counter()
    in_process_django(
        args.database_url,
        VAR,
        secret="bench-only-api",
        recreate=args.recreate,
        settings="bench.support.settings",
        env={"MES_API_THROTTLE_RATE": "1000000/s"},
    )
    from django.db import connection, connections

    from erp_sync.auth import create_api_client
    from mes.models import WorkOrder

    require_empty(WorkOrder.objects.exists(), "work orders")
    vendor = connection.vendor
    print(f"filling {args.orders:,} work orders x 4 operations on {vendor} ...", flush=True)
    fill_started = time.perf_counter()
    populate(args.orders)
    fill_s = time.perf_counter() - fill_started

    _, token = create_api_client(name="bench", scope="erp")
    middle = WorkOrder.objects.filter(number__startswith="B-").order_by("number")[args.orders // 2]
    since = WorkOrder.objects.order_by("updated_at")[args.orders // 2].updated_at
    since_q = since.isoformat().replace("+00:00", "Z")
    targets = [
        ("floor: constant JSON (Django view)", "/bench/floor/"),
        ("peer: DRF ModelSerializer list, 100", "/bench/drf-list/?page_size=100"),
        ("API list, 100 orders", "/api/v1/work-orders/?page_size=100"),
        ("API detail", f"/api/v1/work-orders/{middle.number}/"),
        ("API changes feed, 100", f"/api/v1/work-orders/?updated_since={since_q}&page_size=100"),
    ]
    local = {label: in_process(path, token, args.in_process) for label, path in targets}
    connections.close_all()

    with gunicorn(dict(os.environ), threads=4) as port:
        ctx = multiprocessing.get_context("spawn")
        results = {}
        with ctx.Pool(1) as pool:
            for label, path in targets:
                results[label] = measure(pool, port, path, token, args)

    floor = results[targets[0][0]]["rps"]
    peer = results[targets[1][0]]["rps"]
    print(
        f"\nAPI benchmark: {args.orders:,} orders x 4 operations on {vendor} (filled in "
        f"{fill_s:.1f} s), gunicorn 2 workers (gthread x4), {args.concurrency} connections, "
        f"{args.seconds:g} s each"
    )
    print(f"{'target':37} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'/floor':>7} {'/peer':>6}")
    for label, r in results.items():
        print(
            f"{label:37} {r['rps']:8.0f} {r['p50']:7.1f} {r['p99']:7.1f} "
            f"{r['rps'] / floor:7.3f} {r['rps'] / peer:6.2f}"
        )
    print(
        f"\nIn-process (test client, no server), {args.in_process} requests each; "
        f"{TimeSplit.HEADER}:"
    )
    for label, (p50, split) in local.items():
        print(f"{label:37} p50 {p50:6.2f} ms | {split.line()}")
    print(TimeSplit.footnote(vendor))
    print(
        "targets: list >= 0.100 of floor and >= 2x peer; detail >= 0.250 of floor; "
        f"p99 < 50 ms (informational); run took {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
