"""API benchmark: throughput and latency of the ERP API beside its baselines, in one run.

PostgreSQL with 100k work orders and 400k operations; gunicorn with 2 workers on
127.0.0.1; load from a separate process (keep-alive HTTP/1.1 connections, asyncio).
For each target it prints requests/s, p50 and p99, and ratios against
- the framework floor: a plain Django view returning a constant JSON body, and
- the peer: a straightforward DRF ModelSerializer list of the same rows.

    python bench/api.py [--orders 100000] [--seconds 8] [--concurrency 8]
                        [--database-url postgres://postgres@127.0.0.1:5432/mes_bench]

Machines here are noisy: read the ratios, not the absolute numbers.
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
sys.path.insert(0, str(ROOT))

from bench.support.server import ensure_postgres_database, gunicorn  # noqa: E402

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


def measure(pool, port, path, token, seconds, concurrency) -> dict:
    pool.apply(_load, ((("127.0.0.1", port, path, token, 1.0, concurrency)),))  # warm up
    latencies, statuses, elapsed = pool.apply(
        _load, (("127.0.0.1", port, path, token, seconds, concurrency),)
    )
    if set(statuses) != {200}:
        raise SystemExit(f"{path}: unexpected statuses {statuses}")
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "n": len(latencies),
    }


# --- data -----------------------------------------------------------------------------------


def populate(orders: int) -> None:
    """100k orders x 4 operations in SQL (generate_series), unless already there."""
    from django.core.management import call_command
    from django.db import connection

    from mes.models import Operation, WorkOrder
    from mes.selectors import rerender_work_orders

    call_command("migrate", verbosity=0)
    ours = WorkOrder.objects.filter(number__startswith="B-")
    if ours.count() == orders:
        if ours.filter(rendered="").exists():
            print("rendering stored representations ...", flush=True)
            rerender_work_orders(ours.filter(rendered=""))
        return
    print(f"populating {orders} work orders and {orders * 4} operations ...", flush=True)
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    with connection.cursor() as cur:
        cur.execute(
            "DELETE FROM mes_operation WHERE work_order_id IN "
            "(SELECT id FROM mes_workorder WHERE number LIKE 'B-%%')"
        )
        cur.execute("DELETE FROM mes_workorder WHERE number LIKE 'B-%%'")
        cur.execute("SELECT id, product_id FROM mes_routing WHERE active ORDER BY id")
        routings = cur.fetchall()
        cur.execute("SELECT id FROM mes_workcenter ORDER BY id")
        centers = [row[0] for row in cur.fetchall()]
        cur.execute("SELECT id FROM mes_machine ORDER BY id")
        machines = [row[0] for row in cur.fetchall()]
        cur.execute(
            f"""
            INSERT INTO mes_workorder (number, product_id, routing_id, quantity, due_date,
                priority, notes, status, held_from_status, quantity_good, quantity_scrap,
                actual_start, actual_end, created_at, updated_at, version)
            SELECT 'B-' || lpad(g::text, 7, '0'),
                (ARRAY{[r[1] for r in routings]})[1 + g % {len(routings)}],
                (ARRAY{[r[0] for r in routings]})[1 + g % {len(routings)}],
                100 + g % 400, now() + (g % 240) * interval '1 hour',
                CASE WHEN g % 9 = 0 THEN 'rush' ELSE 'normal' END, '',
                (ARRAY['released','in_progress','completed','planned'])[1 + g % 4], '',
                g % 100, g % 7, now() - interval '2 days', NULL,
                now() - interval '3 days', now() - (g || ' seconds')::interval, 3
            FROM generate_series(1, {orders}) g
            """
        )
        cur.execute(
            f"""
            INSERT INTO mes_operation (work_order_id, sequence, name, work_center_id,
                machine_id, status, quantity_good, quantity_scrap, setup_seconds, cycle_seconds,
                instructions, planned_start, planned_end, actual_start, actual_end,
                last_operator_id, run_seconds, running_since, confirmed_run_seconds,
                updated_at, version)
            SELECT wo.id, s * 10, 'Step ' || s,
                (ARRAY{centers})[1 + (wo.id + s) % {len(centers)}],
                CASE WHEN s = 1 THEN (ARRAY{machines})[1 + wo.id % {len(machines)}] END,
                CASE WHEN s = 1 THEN 'done' WHEN s = 2 THEN 'running' ELSE 'pending' END,
                CASE WHEN s = 1 THEN wo.quantity ELSE 0 END, 0, 300, 12.5,
                'Check the drawing.', NULL, NULL, NULL, NULL, NULL, 0, NULL, 0, now(), 2
            FROM mes_workorder wo CROSS JOIN generate_series(1, 4) s
            WHERE wo.number LIKE 'B-%%'
            """
        )
        cur.execute("ANALYZE")
    assert Operation.objects.filter(work_order__number__startswith="B-").count() == orders * 4
    print("rendering stored representations ...", flush=True)
    rerender_work_orders(ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mes_bench"
        ),
    )
    args = parser.parse_args()

    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": "bench-only",
        "DEBUG": "0",
        "MES_PLAIN_STATIC": "1",
        "MES_API_THROTTLE_RATE": "1000000/s",
        "DJANGO_SETTINGS_MODULE": "bench.support.settings",
        "LOG_LEVEL": "WARNING",
        "MES_VAR_DIR": str(ROOT / "var" / "bench"),
    }
    os.environ.update(env)
    ensure_postgres_database(args.database_url)
    import django

    django.setup()
    populate(args.orders)
    from erp_sync.auth import create_api_client
    from erp_sync.models import ApiClient
    from mes.models import WorkOrder

    ApiClient.objects.filter(name="bench").delete()
    _, token = create_api_client(name="bench", scope="erp")
    middle = WorkOrder.objects.filter(number__startswith="B-").order_by("number")[args.orders // 2]
    since = WorkOrder.objects.order_by("updated_at")[args.orders // 2].updated_at
    from django.db import connections

    connections.close_all()

    with gunicorn(env, threads=4) as port:
        since_q = since.isoformat().replace("+00:00", "Z")
        targets = [
            ("floor: constant JSON (Django view)", "/bench/floor/"),
            ("peer: DRF ModelSerializer list, 100", "/bench/drf-list/?page_size=100"),
            ("API list, 100 orders", "/api/v1/work-orders/?page_size=100"),
            ("API detail", f"/api/v1/work-orders/{middle.number}/"),
            (
                "API changes feed, 100",
                f"/api/v1/work-orders/?updated_since={since_q}&page_size=100",
            ),
        ]
        ctx = multiprocessing.get_context("spawn")
        results = {}
        with ctx.Pool(1) as pool:
            for label, path in targets:
                results[label] = measure(pool, port, path, token, args.seconds, args.concurrency)

    floor = results[targets[0][0]]["rps"]
    peer = results[targets[1][0]]["rps"]
    print(
        f"\nAPI benchmark: {args.orders} orders x 4 operations on PostgreSQL, gunicorn 2 "
        f"workers (gthread x4), {args.concurrency} connections, {args.seconds:.0f} s each"
    )
    print(f"{'target':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'/floor':>8} {'/peer':>7}")
    for label, r in results.items():
        print(
            f"{label:40} {r['rps']:8.0f} {r['p50']:8.1f} {r['p99']:8.1f} "
            f"{r['rps'] / floor:8.3f} {r['rps'] / peer:7.2f}"
        )
    print("targets: list >= 0.100 of floor and >= 2x peer; detail >= 0.250 of floor; p99 < 50 ms")


if __name__ == "__main__":
    main()
