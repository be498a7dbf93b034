"""Live schedule benchmark: what a re-plan costs against the database.

A fresh SQLite database under var/bench-replan/ (or BENCH_DATABASE_URL / --database-url, a
PostgreSQL database that is created when missing and emptied of work orders), with a plant
of 6 work centers of 4 machines and N released orders of 3 operations (made through the
services, not timed). For each N it measures, best and median of --repeat runs:

- snapshot: reading what the scheduler reads (the open orders with their operations and
  the active machines), the baseline every re-plan pays;
- steady re-plan: ``replan()`` when nothing moved (snapshot, plan, compare, no write);
- machine down: ``replan()`` after a machine went down (the orders behind it move: each is
  written with its audit record and schedule.changed event), and back up again.

Ratios are to the snapshot of the same run. Loopback only; about a minute.

    python bench/replan.py [--orders 200,1000] [--repeat 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.support.server import ensure_postgres_database, fresh_sqlite_url  # noqa: E402

VAR = ROOT / "var" / "bench-replan"
WORK_CENTERS, MACHINES_PER_CENTER, STEPS = 6, 4, 3


def timed(fn, repeat: int) -> tuple[float, float, object]:
    runs, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - started)
    return min(runs) * 1000, statistics.median(runs) * 1000, result


def build_plant():
    from decimal import Decimal

    from mes.models import Area, Machine, Product, Routing, RoutingStep, Site, WorkCenter

    site = Site.objects.create(code="BENCH", name="Bench plant")
    area = Area.objects.create(code="BENCH-A", name="Area", site=site)
    centers = []
    for c in range(WORK_CENTERS):
        wc = WorkCenter.objects.create(code=f"BWC-{c}", name=f"Center {c}", area=area)
        centers.append(wc)
        for m in range(MACHINES_PER_CENTER):
            Machine.objects.create(code=f"BM-{c}-{m}", name=f"Machine {c}.{m}", work_center=wc)
    routings = []
    for p in range(WORK_CENTERS):
        product = Product.objects.create(code=f"BP-{p}", name=f"Product {p}", unit="pcs")
        routing = Routing.objects.create(code=f"BR-{p}", product=product, version=1, active=True)
        for s in range(STEPS):
            RoutingStep.objects.create(
                routing=routing,
                sequence=(s + 1) * 10,
                name=f"Step {s + 1}",
                work_center=centers[(p + s) % WORK_CENTERS],
                setup_seconds=600,
                cycle_seconds=Decimal("20"),
            )
        routings.append(routing)
    return routings


def add_orders(routings, count: int, start: int) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from mes import services

    planner, _ = get_user_model().objects.get_or_create(username="bench-planner")
    now = timezone.now()
    for i in range(start, start + count):
        routing = routings[i % len(routings)]
        services.create_work_order(
            number=f"BWO-{i:06d}",
            product=routing.product,
            routing=routing,
            quantity=50 + (i * 37) % 200,
            due_date=now + timedelta(hours=4 + (i * 13) % 200),
            priority="rush" if i % 20 == 0 else "normal",
            actor=planner,
            release=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", default="200,1000", help="comma separated order counts")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.orders.split(","))

    VAR.mkdir(parents=True, exist_ok=True)
    database_url = args.database_url or fresh_sqlite_url(VAR)
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "bench-only-replan",
            "DEBUG": "0",
            "MES_VAR_DIR": str(VAR),
            "DJANGO_SETTINGS_MODULE": "mes.settings",
            "LOG_LEVEL": "WARNING",
        }
    )
    if database_url.startswith("postgres"):
        ensure_postgres_database(database_url)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from django.db import transaction
    from django.utils import timezone

    from mes import services
    from mes.models import Machine, WorkOrder
    from mes.scheduling import services as scheduling

    if WorkOrder.objects.exists():
        sys.exit("The bench database already holds work orders; give it an empty one.")
    started = time.perf_counter()
    routings = build_plant()
    print(
        f"Live schedule re-plan on {django.db.connection.vendor}: {WORK_CENTERS} work centers "
        f"x {MACHINES_PER_CENTER} machines, {STEPS} operations per order; "
        f"best / median of {args.repeat} in ms, ratio = median / snapshot median"
    )
    print(
        f"{'orders':>7} | {'snapshot':>15} | {'steady re-plan':>15} {'ratio':>6} | "
        f"{'machine down':>13} {'moved':>6} {'ratio':>6} | {'first plan':>10}"
    )
    made = 0
    machine = Machine.objects.order_by("code").first()
    operator = machine and services.Actor.system("bench")
    for size in sizes:
        add_orders(routings, size - made, made)
        made = size
        now = timezone.now()

        def snapshot():
            return (len(scheduling._orders()), len(scheduling._machines()))

        first_started = time.perf_counter()
        first = scheduling.replan(reason="bench: first plan", now=now)
        first_ms = (time.perf_counter() - first_started) * 1000
        snap_best, snap_median, _ = timed(snapshot, args.repeat)
        steady_best, steady_median, steady = timed(
            lambda now=now: scheduling.replan(reason="bench: steady", now=now), args.repeat
        )
        assert steady.changed == 0, steady

        down_runs, moved = [], 0
        for _ in range(args.repeat):
            for state in ("down", "idle"):
                with transaction.atomic():
                    services.set_machine_state(machine, state=state, actor=operator)
                t0 = time.perf_counter()
                summary = scheduling.replan(reason=f"bench: {state}", now=now)
                down_runs.append(time.perf_counter() - t0)
                moved = max(moved, summary.changed)
        down_median = statistics.median(down_runs) * 1000
        print(
            f"{size:>7} | {snap_best:>6.1f} {snap_median:>8.1f} | "
            f"{steady_best:>6.1f} {steady_median:>8.1f} {steady_median / snap_median:>6.2f} | "
            f"{down_median:>13.1f} {moved:>6} {down_median / snap_median:>6.2f} | "
            f"{first_ms:>7.0f} ({first.changed} written)"
        )
    print(
        "machine down = one re-plan after a machine of the first work center went down or "
        "came back (median over both); moved = orders written (audit + schedule.changed); "
        f"run took {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
