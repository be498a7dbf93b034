"""Quality benchmark: SPC page and recording a result, beside plain SELECTs of their rows.

One characteristic with 100,000 results; each figure sits beside a plain SELECT of the same
rows measured in the same run.

A fresh SQLite database under var/bench-quality/ (or BENCH_DATABASE_URL / --database-url: a
PostgreSQL database is created when missing and migrated; it must hold no work orders, or
pass --recreate to drop and re-create a ``mes_bench*`` database first). The bench builds
what it needs:

- master data through the ORM: one work center with 4 machines, a product and its active
  routing BQ-R with one step (10, "Drill") whose inspection plan measures HOLE-D "Hole
  diameter", 8.000 +/- 0.050 mm, every piece and the first piece, reaction "warn" (an
  out-of-spec value in the history opens nothing and holds nothing);
- the history through the services, back-dated: --orders work orders (default 200) are
  created and released (release copies the plan into an ``OperationCheck``, series
  ``BQ-R/10/HOLE-D``), started on a machine, given their good quantity and completed, except
  the last 4, which stay running (one per machine);
- the --results inspection results (default 100,000, about 500 per operation: ``first`` and
  ``piece:1..``) are bulk inserted (the fill is not what is measured) with every column as
  the service writes it, from a noisy process (tool offsets, wear drift, ~0.2 % burrs out
  of spec; those fails get no nonconformance rows, which nothing measured reads). ``seq``
  follows the recording time across the 4 machines, as the service's commit-ordered clock
  would; the ``quality_results`` clock is then set to the last seq so the service continues
  gap-free. On PostgreSQL the database is ANALYZEd afterwards (what autovacuum would do).

Measured in-process (Django's test ``Client`` and direct service calls, no server), p50/p95:

1. SPC page: a supervisor GETs /quality/spc/BQ-R/10/HOLE-D/ (--page-repeat times after
   --warmup) and the list of characteristics /quality/spc/. Baseline: the plain ORM SELECT
   of the rows the page reads (the latest 500 current results of the series with their work
   order number, evaluated with list()); reference: raw ``SELECT count(*)`` of the whole
   series. Target: the SPC page under 150 ms p95 on PostgreSQL.
2. Recording one result: ``mes.quality.services.record_result`` of "8.012" as an extra
   sample, cycling over the 4 running operations (--record-repeat times after --warmup).
   Baseline: plain SELECTs of the rows the service reads, outside a transaction: the
   operation's checks and the sample keys already recorded for the check (about 500).
   Reference: a transaction that updates one row and commits (the write floor).
   Target: under 30 ms p95.

Each measurement and its baselines run interleaved, round by round, so that a noisy
machine slows them alike. Then, where the time goes: the pages' queries (count and time in
``cursor.execute``), and, called directly, the selector (``series_page``: rows and
analysis), ``series_rows`` alone, ``spc.analyse`` alone, the two ``control_chart_svg``
renderings and the list's ``series_summaries``; and the statements of one
``record_result``. The page is measured before any result is recorded (recorded samples
join the series).

Timings are reported, never asserted: "meets target" is informational. The bench exits
non-zero only on errors (a page that is not 200, a result not written as expected).

    python bench/quality.py [--results 100000] [--orders 200] [--page-repeat 50]
                            [--record-repeat 200] [--warmup 3] [--quick]
                            [--database-url postgres://postgres@127.0.0.1:5432/mes_bench_q]
                            [--recreate]

--quick is the CI smoke run (2,000 results over 20 orders, few repetitions; seconds on
SQLite). Loopback only; the full run takes about a minute.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.support.server import in_process_django  # noqa: E402

VAR = ROOT / "var" / "bench-quality"
ROUTING, SEQUENCE, CODE = "BQ-R", 10, "HOLE-D"
NOMINAL, TOLERANCE = Decimal("8.000"), Decimal("0.050")
MACHINES = 4  # also the number of operations left running for the recording bench
CYCLE = timedelta(seconds=20)  # one piece, one measurement
PAGE_TARGET_MS, RECORD_TARGET_MS = 150.0, 30.0
QUICK = {"results": 2000, "orders": 20, "page_repeat": 10, "record_repeat": 30, "warmup": 2}
FULL = {"results": 100_000, "orders": 200, "page_repeat": 50, "record_repeat": 200, "warmup": 3}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def timed(fn: Callable[[], object], repeat: int, warmup: int = 0) -> list[float]:
    """Milliseconds of ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return runs


# --- The bench's own data -------------------------------------------------------------------


def build_master_data() -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from mes.models import Area, Machine, Product, Routing, RoutingStep, Site, WorkCenter
    from mes.quality.choices import CheckKind, Reaction
    from mes.quality.models import InspectionCharacteristic

    site = Site.objects.create(code="BQ", name="Quality bench plant")
    area = Area.objects.create(code="BQ-A", name="Machining", site=site)
    wc = WorkCenter.objects.create(code="BQ-DRILL", name="Drilling", area=area)
    machines = [
        Machine.objects.create(code=f"BQ-M{m + 1}", name=f"Drill {m + 1}", work_center=wc)
        for m in range(MACHINES)
    ]
    product = Product.objects.create(code="BQ-FLANGE", name="Flange", unit="pcs")
    routing = Routing.objects.create(code=ROUTING, product=product, version=1, active=True)
    step = RoutingStep.objects.create(
        routing=routing,
        sequence=SEQUENCE,
        name="Drill",
        work_center=wc,
        setup_seconds=600,
        cycle_seconds=Decimal(CYCLE.total_seconds()),
    )
    characteristic = InspectionCharacteristic(
        step=step,
        code=CODE,
        name="Hole diameter",
        kind=CheckKind.VARIABLE,
        nominal=NOMINAL,
        lower_limit=NOMINAL - TOLERANCE,
        upper_limit=NOMINAL + TOLERANCE,
        unit="mm",
        decimals=3,
        sample_size=1,
        first_piece=True,
        every_n=1,
        mandatory=True,
        reaction=Reaction.WARN,
    )
    characteristic.full_clean()
    characteristic.save()

    users = get_user_model().objects
    operator = users.create_user("bq-operator", first_name="Olga", last_name="Operator")
    operator.groups.add(Group.objects.get(name="operator"))
    supervisor = users.create_user("bq-supervisor", first_name="Sam", last_name="Supervisor")
    supervisor.groups.add(Group.objects.get(name="supervisor"))
    return {
        "machines": machines,
        "product": product,
        "routing": routing,
        "characteristic": characteristic,
        "operator": operator,
        "supervisor": supervisor,
    }


class Process:
    """A drilled hole: per-tool offset, wear drift along an order, noise, and now and then
    a burr or a chip that puts a piece out of spec (about 0.2 %)."""

    def __init__(self, seed: int = 20261202) -> None:
        self.random = random.Random(seed)
        self.lower, self.upper = NOMINAL - TOLERANCE, NOMINAL + TOLERANCE

    def order(self, pieces: int) -> list[tuple[str, str]]:
        """(decimal text, verdict) of ``pieces`` measurements of one order (a new tool)."""
        offset = self.random.gauss(0.0, 0.004)
        wear = self.random.uniform(0.004, 0.014)
        out = []
        for k in range(pieces):
            value = float(NOMINAL) + offset + wear * k / max(1, pieces)
            value += self.random.gauss(0, 0.008)
            if self.random.random() < 0.002:
                value += self.random.choice((-1, 1)) * self.random.uniform(0.045, 0.08)
            text = f"{value:.3f}"
            number = Decimal(text)
            verdict = "pass" if self.lower <= number <= self.upper else "fail"
            out.append((text, verdict))
        return out


def fill(setup: dict, results: int, orders: int) -> dict:
    """The orders through the services (back-dated), their results in bulk."""
    from django.db import connection, transaction
    from django.utils import timezone

    from mes import services
    from mes.models import ChangeClock
    from mes.quality import services as quality
    from mes.quality.models import InspectionResult, OperationCheck
    from mes.quality.sampling import label_of

    if results < orders:
        raise SystemExit(f"--results ({results}) must be at least --orders ({orders}).")
    if orders < MACHINES:
        raise SystemExit(f"--orders must be at least {MACHINES} (the running operations).")
    operator, machines = setup["operator"], setup["machines"]
    actor = services.Actor.of(operator)
    planner = services.Actor.system("bench")
    process = Process()
    per_order = [results // orders + (1 if i < results % orders else 0) for i in range(orders)]
    # Machine m runs orders m, m + 4, ... back to back (setup, then a piece every CYCLE);
    # the history ends about now, the last order of each machine still running.
    spans = [CYCLE * n + timedelta(minutes=15) for n in per_order]
    began = timezone.now() - sum(spans, timedelta()) / MACHINES - timedelta(hours=1)
    machine_free = [began + timedelta(minutes=7 * m) for m in range(MACHINES)]
    starts = []
    for i, span in enumerate(spans):
        starts.append(machine_free[i % MACHINES])
        machine_free[i % MACHINES] += span
    # seq follows the time of recording across the machines (the service hands it out in
    # commit order), so the latest samples of the series interleave the running orders.
    first = timedelta(minutes=10)
    stamps = sorted(
        (starts[i] + first + CYCLE * k, i, k) for i, n in enumerate(per_order) for k in range(n)
    )
    seqs = [[0] * n for n in per_order]
    for seq, (_at, i, k) in enumerate(stamps, start=1):
        seqs[i][k] = seq
    del stamps

    running = []
    for i, pieces in enumerate(per_order):
        at = starts[i]
        good = max(1, pieces - 1)  # "first" is piece 1 measured at setup, then every piece
        wo = services.create_work_order(
            number=f"BQ-{i + 1:05d}",
            product=setup["product"],
            routing=setup["routing"],
            quantity=good,
            due_date=at + timedelta(days=2),
            actor=planner,
            release=True,
            at=at,
        )
        op = wo.operations.get(sequence=SEQUENCE)
        machine = machines[i % MACHINES]
        op = services.start_operation(op, operator=operator, machine=machine, at=at)
        check = OperationCheck.objects.get(operation=op, code=CODE)
        keys = ["first"] + [f"piece:{k}" for k in range(1, pieces)]
        rows = []
        for k, (key, (text, verdict)) in enumerate(zip(keys, process.order(pieces), strict=True)):
            rows.append(
                InspectionResult(
                    seq=seqs[i][k],
                    characteristic=check,
                    series=check.series,
                    operation=op,
                    work_order=wo,
                    machine=machine,
                    sample_key=key,
                    sample_label=label_of(key),
                    values=[text],
                    defect_code="",
                    verdict=verdict,
                    version=1,
                    supersedes=None,
                    is_current=True,
                    correction_reason="",
                    recorded_by=operator,
                    recorded_by_name=actor.name,
                    recorded_at=at + first + CYCLE * k,
                )
            )
        InspectionResult.objects.bulk_create(rows, batch_size=5000)
        done_at = at + spans[i] - timedelta(minutes=1)
        services.report_quantity(op, actor=operator, good=good, at=done_at)
        if i < orders - MACHINES:
            services.complete_operation(op, actor=operator, at=done_at)
        else:
            running.append((op, check))
    with transaction.atomic():
        ChangeClock.objects.update_or_create(name=quality.RESULTS, defaults={"last_value": results})
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
    return {"running": running, "last_seq": results, "series": running[0][1].series}


# --- Measurements ---------------------------------------------------------------------------


def measure_pages(setup: dict, data: dict, repeat: int, warmup: int) -> dict[str, list[float]]:
    from django.db import connection
    from django.test import Client

    from mes.quality.models import InspectionResult

    client = Client()
    client.force_login(setup["supervisor"])
    detail = f"/quality/spc/{ROUTING}/{SEQUENCE}/{CODE}/"

    def get(path: str, expect: str) -> Callable[[], None]:
        def call() -> None:
            response = client.get(path)
            body = response.content.decode()
            if response.status_code != 200:
                raise SystemExit(f"GET {path}: HTTP {response.status_code}\n{body[:800]}")
            if expect not in body:
                raise SystemExit(f"GET {path}: {expect!r} is not in the page\n{body[:800]}")

        return call

    series = data["series"]

    def latest_rows() -> None:
        rows = list(
            InspectionResult.objects.filter(series=series, is_current=True)
            .order_by("-seq")
            .values_list("seq", "values", "sample_label", "work_order__number", "recorded_at")[:500]
        )
        assert rows, "no rows in the series"

    table = InspectionResult._meta.db_table

    def count_series() -> None:
        with connection.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table} WHERE series = %s", [series])
            assert cur.fetchone()[0] >= data["last_seq"]

    out = {}
    # Interleaved per round, so that drift of a noisy machine hits page and baseline alike.
    for _ in range(warmup):
        get(detail, "<svg")()
        get("/quality/spc/", "Hole diameter")()
        latest_rows()
        count_series()
    calls = {
        "page": get(detail, "<svg"),
        "list": get("/quality/spc/", "Hole diameter"),
        "latest": latest_rows,
        "count": count_series,
    }
    for _ in range(repeat):
        for name, call in calls.items():
            out.setdefault(name, []).extend(timed(call, 1))
    return out


def measure_recording(setup: dict, data: dict, repeat: int, warmup: int) -> dict[str, list]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from mes.models import ChangeClock
    from mes.quality.models import InspectionResult, OperationCheck
    from mes.quality.services import record_result

    operator, running = setup["operator"], data["running"]
    ChangeClock.objects.get_or_create(name="bench-quality")
    state = {"n": 0, "reads": 0, "seq": data["last_seq"]}

    def record() -> None:
        op, check = running[state["n"] % len(running)]
        state["n"] += 1
        result = record_result(
            op, check=check, values=["8.012"], actor=operator, sample_key=f"extra:{state['n']}"
        )
        state["seq"] += 1
        if result.seq != state["seq"] or result.verdict != "pass" or not result.is_current:
            raise SystemExit(
                f"record_result wrote seq {result.seq} ({result.verdict}), "
                f"expected seq {state['seq']} (pass): the results clock did not continue"
            )

    def read_what_it_reads() -> None:
        op, check = running[state["reads"] % len(running)]
        state["reads"] += 1
        checks = list(OperationCheck.objects.filter(operation=op))
        keys = set(
            InspectionResult.objects.filter(
                characteristic_id=check.pk, is_current=True
            ).values_list("sample_key", flat=True)
        )
        assert checks and keys

    def write_floor() -> None:
        with transaction.atomic():
            ChangeClock.objects.filter(name="bench-quality").update(last_value=state["reads"])

    for _ in range(warmup):
        record()
        read_what_it_reads()
        write_floor()
    with CaptureQueriesContext(connection) as ctx:
        record()
    statements = Counter(q["sql"].split()[0].upper() for q in ctx.captured_queries)
    out: dict[str, list[float]] = {
        "queries": [
            f"{len(ctx.captured_queries)} statements: "
            + ", ".join(f"{n} {verb}" for verb, n in statements.most_common())
        ]
    }
    calls = {"record": record, "read": read_what_it_reads, "floor": write_floor}
    for _ in range(repeat):
        for name, call in calls.items():
            out.setdefault(name, []).extend(timed(call, 1))
    return out


def breakdown(setup: dict, data: dict, repeat: int) -> list[tuple[str, str]]:
    """Where the SPC page's time goes (p50 of ``repeat`` calls each)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from mes.quality import selectors, spc
    from mes.quality.charts import control_chart_svg

    client = Client()
    client.force_login(setup["supervisor"])
    detail = f"/quality/spc/{ROUTING}/{SEQUENCE}/{CODE}/"
    lines = []
    for path in (detail, "/quality/spc/"):
        totals, executing, counts, slowest = [], [], [], (0.0, "")
        for _ in range(repeat):
            spent: list[tuple[float, str]] = []

            def clock(execute, sql, params, many, context, spent=spent):
                started = time.perf_counter()
                try:
                    return execute(sql, params, many, context)
                finally:
                    spent.append(((time.perf_counter() - started) * 1000, sql))

            with CaptureQueriesContext(connection) as ctx, connection.execute_wrapper(clock):
                started = time.perf_counter()
                response = client.get(path)
                totals.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
            counts.append(len(ctx.captured_queries))
            executing.append(sum(ms for ms, _ in spent))
            slowest = max(slowest, max(spent))
        lines.append(
            (
                f"GET {path}",
                f"{statistics.median(totals):.1f} ms with {max(counts)} queries taking "
                f"{statistics.median(executing):.1f} ms in cursor.execute (slowest "
                f"{slowest[0]:.1f} ms: {slowest[1][:60]}...); "
                f"{len(response.content) / 1024:.0f} KiB of HTML",
            )
        )

    def p50(fn: Callable[[], object]) -> float:
        return statistics.median(timed(fn, repeat, warmup=1))

    page = selectors.series_page(ROUTING, SEQUENCE, CODE)
    rows = page.rows
    subgroups = [r[1] for r in rows]
    analysis = page.analysis
    limits = analysis.limits
    labels = [f"{row[3]} · {row[2]}" for row in rows]
    flagged = {v.index for v in analysis.violations}

    def charts() -> None:
        control_chart_svg(
            title="Individuals",
            points=analysis.points,
            center=limits.center,
            ucl=limits.ucl,
            lcl=limits.lcl,
            flagged=flagged,
            labels=labels,
            unit=page.unit,
            spec=(page.lower, page.upper),
        )
        control_chart_svg(
            title="Moving range",
            points=[r if r is not None else float("nan") for r in analysis.ranges],
            center=limits.range_center,
            ucl=limits.range_ucl,
            lcl=limits.range_lcl,
            labels=labels,
            unit=page.unit,
            height=180,
        )

    lines += [
        (
            "selectors.series_page()",
            f"{p50(lambda: selectors.series_page(ROUTING, SEQUENCE, CODE)):.1f} ms "
            "(rows + analysis)",
        ),
        (
            "  selectors.series_rows()",
            f"{p50(lambda: selectors.series_rows(data['series'])):.1f} ms "
            f"({len(rows)} rows read and parsed)",
        ),
        (
            "  spc.analyse()",
            f"{p50(lambda: spc.analyse(subgroups, lsl=page.lower, usl=page.upper)):.1f} ms "
            f"({len(analysis.violations)} rule violations found)",
        ),
        ("control_chart_svg() x 2", f"{p50(charts):.1f} ms"),
        ("selectors.series_summaries()", f"{p50(selectors.series_summaries):.1f} ms (list page)"),
    ]
    return lines


# --- The run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, help="results in the series (100000)")
    parser.add_argument("--orders", type=int, help="work orders they are spread over (200)")
    parser.add_argument("--page-repeat", type=int, help="timed GETs of each page (50)")
    parser.add_argument("--record-repeat", type=int, help="timed record_result calls (200)")
    parser.add_argument("--warmup", type=int, help="untimed calls before each (3)")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 2,000 results")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument(
        "--recreate", action="store_true", help="drop and re-create a mes_bench* PostgreSQL db"
    )
    args = parser.parse_args()
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    started = time.perf_counter()
    in_process_django(args.database_url, VAR, secret="bench-only-quality", recreate=args.recreate)

    from django.db import connection

    from mes.models import WorkOrder

    if WorkOrder.objects.exists():
        sys.exit(
            "The bench database already holds work orders; give it an empty one "
            "(or --recreate a mes_bench* PostgreSQL database)."
        )
    vendor = connection.vendor
    print(
        f"filling {args.results:,} results over {args.orders} work orders on {vendor} ...",
        flush=True,
    )
    fill_started = time.perf_counter()
    setup = build_master_data()
    data = fill(setup, args.results, args.orders)
    fill_s = time.perf_counter() - fill_started

    pages = measure_pages(setup, data, args.page_repeat, args.warmup)
    details = breakdown(setup, data, max(5, args.page_repeat // 5))
    # Last: the recorded samples join the series (and would change what the page shows).
    recording = measure_recording(setup, data, args.record_repeat, args.warmup)

    def stats(values: list[float]) -> tuple[float, float]:
        return statistics.median(values), percentile(values, 0.95)

    rows = [
        # (metric, timings, baseline timings or None, target ms or None)
        (f"SPC page GET .../{CODE}/", pages["page"], pages["latest"], PAGE_TARGET_MS),
        ("SPC list GET /quality/spc/", pages["list"], pages["latest"], None),
        ("  baseline: SELECT latest 500", pages["latest"], None, None),
        (f"  ref: SELECT count(*) ({data['last_seq'] // 1000}k)", pages["count"], None, None),
        ("record_result (one sample)", recording["record"], recording["read"], RECORD_TARGET_MS),
        ("  baseline: SELECT checks+keys", recording["read"], None, None),
        ("  ref: UPDATE 1 row + COMMIT", recording["floor"], None, None),
    ]
    print(
        f"\nQuality benchmark on {vendor}: series {data['series']} with {data['last_seq']:,} "
        f"results over {args.orders} work orders ({MACHINES} running); in-process; "
        f"{args.page_repeat} page GETs, {args.record_repeat} recordings, after "
        f"{args.warmup} warm-ups; fill took {fill_s:.1f} s"
    )
    print(
        f"{'metric':34} | {'p50 ms':>7} {'p95 ms':>7} | {'base p50':>8} {'ratio':>6} | "
        f"{'target':>12} {'meets':>6}"
    )
    for label, values, baseline, target in rows:
        p50, p95 = stats(values)
        if baseline is None:
            base, ratio = "", ""
        else:
            b50 = statistics.median(baseline)
            base, ratio = f"{b50:8.2f}", f"{p50 / b50:6.1f}"
        goal = f"p95 < {target:.0f} ms" if target else ""
        meets = ("yes" if p95 < target else "NO") if target else ""
        print(f"{label:34} | {p50:7.2f} {p95:7.2f} | {base:>8} {ratio:>6} | {goal:>12} {meets:>6}")
    print("\nWhere the time goes (p50; selectors and charts called directly):")
    for label, text in details:
        print(f"  {label:30} {text}")
    print(f"  {'record_result()':30} {recording['queries'][0]} (one call)")
    print(
        "ratio = p50 / baseline p50 (same run). Targets are informational, never asserted; "
        f"run took {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
