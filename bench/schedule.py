"""Scheduling engine benchmark: ``mes.scheduling.engine.plan`` on synthetic plants.

Each plant has N released orders of 4 operations each, spread over work centers of about four
machines (plus one manual station), with some operations already running or paused on their
machines, leading operations done, and a few machines down or offline. The plan is timed on
ready-made engine input (no database: the engine is pure), best of R and median, beside a
baseline measured in the same run on the same number of operations: ``sorted()`` of one tuple
per operation plus a dict built from them, about the least any planner must do with its input.

    python bench/schedule.py                     # (200, 8), (2000, 50), (10000, 200)
    python bench/schedule.py --quick             # (200, 8), (2000, 50)
    python bench/schedule.py --sizes 500x10,5000x100 --repeat 7

Machines here are noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mes.calendars import working_time as wt  # noqa: E402 (pure: no Django setup needed)
from mes.scheduling import engine  # noqa: E402

NOW = datetime(2026, 11, 27, 8, tzinfo=UTC)
OPS_PER_ORDER = 4
MACHINES_PER_WORK_CENTER = 4
SIZES = "200x8,2000x50,10000x200"
QUICK_SIZES = "200x8,2000x50"


def build_plant(orders: int, machines: int, seed: int):
    """Engine input for ``orders`` orders on ``machines`` machines (deterministic per seed)."""
    rng = random.Random(seed)
    centers = max(1, machines // MACHINES_PER_WORK_CENTER)
    manual = centers + 1  # a work center without machines
    machine_list = [
        engine.MachineIn(
            id=i + 1,
            work_center_id=i % centers + 1,
            state=rng.choices(["idle", "running", "down", "offline"], [60, 35, 3, 2])[0],
        )
        for i in range(machines)
    ]
    by_center: dict[int, list[int]] = {}
    for m in machine_list:
        by_center.setdefault(m.work_center_id, []).append(m.id)
    busy: set[int] = set()  # machines with an operation running on them
    order_list = []
    op_id = 0
    for index in range(orders):
        started = rng.random() < 0.3  # in progress: some steps done, one maybe on a machine
        done = rng.randint(0, OPS_PER_ORDER - 1) if started else 0
        ops = []
        for position in range(OPS_PER_ORDER):
            op_id += 1
            wc = manual if rng.random() < 0.05 else rng.randint(1, centers)
            status, machine = "pending", None
            if position < done:
                status = "done"
            elif position == done:
                status = "ready"
                free = [m for m in by_center.get(wc, []) if m not in busy]
                if started and free and rng.random() < 0.5:
                    machine = rng.choice(free)
                    status = "running" if rng.random() < 0.8 else "paused"
                    if status == "running":
                        busy.add(machine)
            ops.append(
                engine.OperationIn(
                    id=op_id,
                    sequence=(position + 1) * 10,
                    work_center_id=wc,
                    status=status,
                    machine_id=machine,
                    setup_seconds=Decimal(rng.choice([0, 300, 900, 1800])),
                    cycle_seconds=Decimal(rng.randint(5, 600)) / 10,
                    remaining_quantity=Decimal(rng.randint(0 if status != "pending" else 1, 200)),
                )
            )
        order_list.append(
            engine.OrderIn(
                id=index + 1,
                number=f"WO-{index + 1:06d}",
                rush=rng.random() < 0.05,
                due=NOW + timedelta(hours=rng.randint(-24, 24 * 14)),
                operations=ops,
            )
        )
    rng.shuffle(order_list)
    return order_list, machine_list


def shift_calendars(machines) -> wt.Calendars:
    """Every work center on three shifts Monday to Friday with a half-hour break each, in
    Berlin time (made anew per plan: expanding the calendar is part of the cost)."""
    days = frozenset(range(5))
    spec = wt.CalendarSpec(
        "Europe/Berlin",
        tuple(
            wt.ShiftSpec(
                code, days, dt.time(start), dt.time(end), ((dt.time(pause), dt.time(pause, 30)),)
            )
            for code, start, end, pause in (("e", 6, 14, 10), ("l", 14, 22, 18), ("n", 22, 6, 2))
        ),
    )
    calendar = wt.WorkingTime(spec)
    centers = {m.work_center_id for m in machines}
    return wt.Calendars({wc: calendar for wc in [*centers, max(centers) + 1]})


def baseline(orders) -> dict:
    """The same number of operations, one tuple each, sorted and keyed by id."""
    rows = [
        (not wo.rush, wo.due, wo.number, op.sequence, op.id, op.work_center_id, op.status)
        for wo in orders
        for op in wo.operations
    ]
    return {row[4]: row for row in sorted(rows)}


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call, the collector off while timing (as ``timeit`` does)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        finally:
            gc.enable()
    return times


def run_size(orders: int, machines: int, repeat: int, seed: int) -> None:
    order_list, machine_list = build_plant(orders, machines, seed)
    ops = sum(len(wo.operations) for wo in order_list)
    on_machine = sum(op.on_machine for wo in order_list for op in wo.operations)
    result = engine.plan(order_list, machine_list, now=NOW)  # warm-up, and a sanity check
    open_ops = sum(op.open for wo in order_list for op in wo.operations)
    if len(result.operations) != open_ops:
        raise SystemExit(f"planned {len(result.operations)} of {open_ops} open operations")
    at_risk = sum(result.at_risk(wo) for wo in order_list)

    plan_times = timed(lambda: engine.plan(order_list, machine_list, now=NOW), repeat)
    base_times = timed(lambda: baseline(order_list), repeat)
    shift_times = timed(
        lambda: engine.plan(
            order_list, machine_list, now=NOW, calendars=shift_calendars(machine_list)
        ),
        repeat,
    )
    plan_best, plan_median = min(plan_times), statistics.median(plan_times)
    shift_best = min(shift_times)
    base_best, base_median = min(base_times), statistics.median(base_times)
    print(
        f"{orders:>6} {machines:>4} {ops:>6} {open_ops:>6} {on_machine:>5} {at_risk:>5} | "
        f"{plan_best * 1000:9.1f} {plan_median * 1000:9.1f} | "
        f"{base_best * 1000:9.1f} {base_median * 1000:9.1f} | "
        f"{plan_best / base_best:5.1f} {plan_median / base_median:6.1f} | "
        f"{open_ops / plan_best:>11,.0f} | {shift_best * 1000:9.1f} {shift_best / plan_best:6.2f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=None, help=f"ORDERSxMACHINES,... (default {SIZES})")
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per size")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sizes = [
        tuple(int(n) for n in size.lower().split("x"))
        for size in (args.sizes or (QUICK_SIZES if args.quick else SIZES)).split(",")
        if size.strip()
    ]

    started = time.perf_counter()
    print(
        f"Scheduling engine, {OPS_PER_ORDER} operations per order, about "
        f"{MACHINES_PER_WORK_CENTER} machines per work center plus a manual station; "
        f"best and median of {args.repeat}; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    print(
        f"{'orders':>6} {'mach':>4} {'ops':>6} {'open':>6} {'on m':>5} {'risk':>5} | "
        f"{'plan best':>9} {'median':>9} | {'base best':>9} {'median':>9} | "
        f"{'ratio':>5} {'median':>6} | {'open ops/s':>11} | {'in shifts':>9} {'/24h':>6}"
    )
    print(
        f"{'':37} | {'ms':>9} {'ms':>9} | {'ms':>9} {'ms':>9} | {'plan/base':>12} | "
        f"{'':>11} | {'best ms':>9} {'ratio':>6}"
    )
    for orders, machines in sizes:
        run_size(orders, machines, args.repeat, args.seed)
    print(
        "open = operations planned, on m = running or paused on a machine, risk = orders "
        "projected late; baseline = sorted() of one tuple per operation plus a dict of them; "
        "ops/s = open operations planned per second (best run); in shifts = the same plan in "
        "a three-shift Monday-Friday calendar with breaks, /24h = its ratio to the plan around "
        "the clock; "
        f"run took {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
