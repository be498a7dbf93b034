"""Load: operator terminals and an ERP against the whole stack, as production runs it.

The demo plant (``seed_demo``) plus what the load needs, made through the services: a cell
(work center, two machines, a part routed through it) per two terminals, each terminal
enrolled there (``enrol_terminal``; its cookie carries the raw token) with an operator of its
own (badge and PIN: sign-in is throttled per badge and per terminal), a machine of its own
and released orders of its own, and an API client with scope ``erp``. The stack is the
top-level ``Procfile``: gunicorn with the repo's configuration (``-c python:mes.gunicorn``,
its workers' metrics in ``PROMETHEUS_MULTIPROC_DIR``), beat and the workers (``worker``:
default + ERP delivery, ``schedule``, ``booking``, ``plc``) on --broker, Redis as the shared
cache when the broker is Redis (``MES_CACHE_URL``), the demo's simulated PLCs (``manage.py
simulate_plcs``, polled every second) and the ERP simulator as the outbox's endpoint. The
load starts when the plant is at rest (every PLC read, the seeded outbox delivered, the
schedule planned) and each web worker has served the terminal's pages once (a warm-up).

The load, with locust as a library in a process of its own (``bench/support/loadgen.py``),
for --seconds (300):

- --terminals (50) terminals, each as a browser on the terminal page: sign in with badge
  and PIN through the real form (CSRF), then poll what the page polls (htmx: the work
  center panel, or the operation's live part) every 1.5 s, and every --action-every
  seconds (20) take the next step through the page's forms with their one-time token: open
  the next job of its own in the queue and start it on its machine, report good, pause
  (the reason screen, then a reason), resume, report the rest, complete, back to the work
  center;
- the ERP: the changes feed (``/api/v1/work-orders/?updated_since=``, following ``next``
  to the end, then from the newest ``updated_at`` seen) every second, and a PUT of a new
  released work order 10 times a minute;
- the baseline: ``/healthz`` (a constant view) twice a second under the same load.

Printed: per route (named by route, not URL), requests, throughput, p50/p95/p99/max and
errors, and p50/p95 as multiples of the baseline's; the first errors; the targets (issue
12: zero errors, terminal actions, the POSTs, p95 under 200 ms on 2 cores, with the load
generator and the simulators on the same machine), reported, never asserted. An error is an
answer other than the one expected (a 2xx, or the sign-in's redirect; a redirect to the
sign-in screen is one), no answer, or an action refused in words. Then where the time goes:
per URL name the mean time inside Django (the web workers' own histogram at /metrics)
beside the client's (the rest is waiting for a free gunicorn worker and the network), the
CPU seconds each process used during the load (and what else ran on the machine), and
what the workers did meanwhile (events, deliveries, re-plans).

From an empty database: a fresh SQLite file under $MES_VAR_DIR/bench-load/ (default
var/bench-load/; the workers share it) or BENCH_DATABASE_URL / --database-url (PostgreSQL;
created when missing, or --recreate to drop and re-create a ``mes_bench*`` database).
--broker defaults to Redis on 127.0.0.1:6379 (database 12) when it answers, else the
embedded filesystem broker (and no shared cache); queues get names of their own, deleted
at the end, with the cache's keys.

    python bench/load.py [--terminals 50] [--seconds 300] [--action-every 20] [--quick]
        [--database-url postgres://postgres@127.0.0.1:5432/mes_bench_load] [--recreate]
        [--broker redis://127.0.0.1:6379/12]

--quick is the CI smoke run: 5 terminals for 20 s, an action every 2.5 s (so that every
step runs). Loopback only, ports chosen at run time; every process it starts is stopped at
the end (and dies with it if it is killed). Linux (the CPU accounting reads /proc).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.support.server import (  # noqa: E402
    database_arguments,
    free_port,
    in_process_django,
    require_empty,
    sizes_of,
)
from bench.support.stack import (  # noqa: E402
    Children,
    default_broker,
    delete_queues,
    free_port_range,
    procfile_processes,
    wait_for,
)

VAR = Path(os.environ.get("MES_VAR_DIR") or ROOT / "var") / "bench-load"
QUICK = {"terminals": 5, "seconds": 20, "action_every": 2.5}
FULL = {"terminals": 50, "seconds": 300, "action_every": 20.0}
REDIS_DB = 12
POLL_S = 1.5  # MES_TERMINAL_POLL_MS
FEED_S = 1.0
PUT_S = 6.0  # 10 a minute
PROBE_S = 0.5
SPAWN_PER_S = 5  # terminals signing in per second at the start
TARGET_ACTION_P95_MS = 200.0
TERMINALS_PER_CENTER = 2
QUANTITY = 20  # per load order: reported as FIRST_REPORT, then the rest
FIRST_REPORT = 12
ACTIONS_PER_ORDER = 6  # start, report, pause, resume, report, complete
PIN = "4711"
ERP_SECRET = "bench-load-erp-secret-0123456789"

# The routes, as the table names them.
FLOOR = "GET /healthz (baseline)"
SIGN_IN_PAGE = "GET /terminal/ (sign-in screen)"
SIGN_IN = "POST /terminal/sign-in/"
WORK_CENTER = "GET /terminal/ (work center)"
PANEL = "GET /terminal/panel/ (poll)"
OPERATION = "GET /terminal/op/{pk}/"
OPERATION_LIVE = "GET /terminal/op/{pk}/live/ (poll)"
START = "POST /terminal/op/{pk}/start/"
REPORT = "POST /terminal/op/{pk}/report/"
PAUSE_ASK = "POST /terminal/op/{pk}/pause/ (asks why)"
PAUSE = "POST /terminal/op/{pk}/pause/ (reason)"
RESUME = "POST /terminal/op/{pk}/resume/"
COMPLETE = "POST /terminal/op/{pk}/complete/"
FEED = "GET /api/v1/work-orders/?updated_since="
FEED_NEXT = "GET /api/v1/work-orders/?...&cursor= (next)"
PUT = "PUT /api/v1/work-orders/{number}/"
GENERATOR = "(exceptions in the load generator)"
ACTIONS = [SIGN_IN, START, REPORT, PAUSE_ASK, PAUSE, RESUME, COMPLETE]
ROUTES = [
    FLOOR,
    SIGN_IN_PAGE,
    SIGN_IN,
    WORK_CENTER,
    PANEL,
    OPERATION,
    OPERATION_LIVE,
    START,
    REPORT,
    PAUSE_ASK,
    PAUSE,
    RESUME,
    COMPLETE,
    FEED,
    FEED_NEXT,
    PUT,
]


# Each route's URL name, as the web workers' metrics label it (the actions are one view).
URL_NAMES = {
    FLOOR: "GET healthz",
    SIGN_IN_PAGE: "GET terminal:home",
    WORK_CENTER: "GET terminal:home",
    SIGN_IN: "POST terminal:sign_in",
    PANEL: "GET terminal:panel",
    OPERATION: "GET terminal:operation",
    OPERATION_LIVE: "GET terminal:operation_live",
    **{name: "POST terminal:act" for name in (START, REPORT, PAUSE_ASK, PAUSE, RESUME, COMPLETE)},
    FEED: "GET api:work-order-list",
    FEED_NEXT: "GET api:work-order-list",
    PUT: "PUT api:work-order-detail",
}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


# --- The plant --------------------------------------------------------------------------------


def add_load_plant(terminals: int, orders_each: int, run: str) -> tuple[list[dict], dict]:
    """What the load needs beside the demo plant: cells (a work center with two machines
    and a part routed through it), two terminals at each, each with an operator, a machine
    and released orders of its own. And a terminal and an operator more for the warm-up.
    Returns what the load generator needs of each terminal, and of the warm-up's."""
    from django.contrib.auth import get_user_model

    from mes.accounts import create_operator
    from mes.models import Area, Site
    from shopfloor.terminal.services import enrol_terminal

    admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
    site = Site.objects.order_by("pk").first()  # the demo's, with its shift calendar
    area = Area.objects.create(code="LOAD", name="Load test cells", site=site)
    cells = [add_cell(area, c) for c in range(math.ceil(terminals / TERMINALS_PER_CENTER))]
    specs = []
    for i in range(terminals):
        work_center, machines, routing = cells[i // TERMINALS_PER_CENTER]
        operator = create_operator(
            username=f"load-op-{i:02d}",
            first_name="Load",
            last_name=f"{i:02d}",
            badge=f"{7000 + i}",
            pin=PIN,
        )
        _terminal, token = enrol_terminal(
            work_center=work_center, name=f"Load terminal {i:02d}", actor=admin
        )
        prefix = f"LOAD-{run}-{i:02d}-"
        add_orders(routing, prefix, orders_each, offset_minutes=i)
        machine = machines[i % TERMINALS_PER_CENTER].code
        specs.append(
            {
                "token": token,
                "badge": operator.badge,
                "pin": PIN,
                "machine": machine,
                "prefix": prefix,
            }
        )
    warm = create_operator(username="load-warm-up", badge="6999", pin=PIN)
    _terminal, token = enrol_terminal(work_center=cells[0][0], name="Load warm-up", actor=admin)
    return specs, {"token": token, "badge_pin": {"badge": warm.badge, "pin": PIN}}


def add_cell(area, c: int) -> tuple:
    """A work center with two machines and a part whose one step is done there."""
    from decimal import Decimal

    from mes import services
    from mes.models import Machine, Product, Routing, RoutingStep, WorkCenter

    wc = WorkCenter.objects.create(code=f"LOAD-WC-{c:02d}", name=f"Cell {c}", area=area)
    machines = [
        Machine.objects.create(
            code=f"LOAD-M-{c:02d}-{m}", name=f"Cell {c} machine {m}", work_center=wc
        )
        for m in range(TERMINALS_PER_CENTER)
    ]
    product = Product.objects.create(code=f"LOAD-P-{c:02d}", name=f"Part {c}", unit="pcs")
    routing = Routing.objects.create(code=f"LOAD-R-{c:02d}", product=product, version=1)
    RoutingStep.objects.create(
        routing=routing,
        sequence=10,
        name="Machine part",
        work_center=wc,
        setup_seconds=300,
        cycle_seconds=Decimal(30),
        instructions="Load the blank, run the program, deburr.",
    )
    services.activate_routing(routing)
    return wc, machines, routing


def add_orders(routing, prefix: str, count: int, *, offset_minutes: int) -> None:
    """Released orders ``<prefix>0``, ``<prefix>1``, ... due in hours, through the service."""
    from django.utils import timezone

    from mes import services

    now = timezone.now()
    for k in range(count):
        services.create_work_order(
            number=f"{prefix}{k}",
            product=routing.product,
            routing=routing,
            quantity=QUANTITY,
            due_date=now + timedelta(hours=8 + k, minutes=offset_minutes),
            actor=services.Actor.system("bench"),
            release=True,
        )


def plant_at_rest() -> bool:
    """Every PLC read, nothing left to deliver, the schedule up to date and not re-planning."""
    from erp_sync.models import DeliveryStatus, OutboxDelivery
    from mes.models import ScheduleState
    from mes.scheduling.services import newest_trigger
    from shopfloor.models import MachineConnection, PlcStatus

    plan = ScheduleState.objects.filter(pk=1).first()
    connected = MachineConnection.objects.values("machine_id")
    return (
        not PlcStatus.objects.filter(machine__in=connected, last_read_at__isnull=True).exists()
        and PlcStatus.objects.filter(machine__in=connected).count() == connected.count()
        and not OutboxDelivery.objects.filter(status=DeliveryStatus.PENDING).exists()
        and plan is not None
        and plan.lease_until is None
        and plan.audit_watermark >= newest_trigger()
    )


def cpu_times(sessions: dict[int, str]) -> tuple[Counter, float, float]:
    """CPU seconds used so far: by each child of the bench with everything it started (its
    session), by PostgreSQL and Redis (whole servers: shared with whoever else uses them);
    and the machine's busy and total CPU seconds. Linux (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    used: Counter = Counter()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        command = text[text.index("(") + 1 : text.rindex(")")]
        rest = text[text.rindex(")") + 1 :].split()  # state, ppid, pgrp, session, ...
        session = int(rest[3])
        seconds = (int(rest[11]) + int(rest[12])) / tick
        if session in sessions:
            used[sessions[session]] += seconds
        elif command.startswith("postgres"):
            used["PostgreSQL"] += seconds
        elif command.startswith("redis-server"):
            used["Redis"] += seconds
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split()[1:9]
    )
    busy = user + nice + system + irq + softirq + steal
    return used, busy / tick, (busy + idle + iowait) / tick


def report_cpu(before: tuple, after: tuple, generator: float) -> None:
    """Who used the CPU while the load ran (``generator``: the load generator's seconds, a
    process that has ended by now)."""
    used = after[0] - before[0]
    used["locust"] = generator
    busy, total = after[1] - before[1], after[2] - before[2]
    others = busy - sum(used.values())
    parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in used.most_common())
    print(
        f"\nCPU while the load ran: {total:.0f} CPU-seconds ({os.cpu_count()} CPUs), busy "
        f"{busy:.0f} ({busy / total:.0%}): {parts}; everything else on the machine {others:.1f}"
    )


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def plant_meanwhile(since: datetime) -> str:
    """What the workers did while the load ran: events written and delivered, re-plans,
    PLC reads."""
    from django.db.models import Count

    from erp_sync.models import DeliveryStatus, OutboxDelivery, OutboxEvent
    from mes.models import AuditRecord

    events = dict(
        OutboxEvent.objects.filter(occurred_at__gte=since)
        .values_list("event_type")
        .annotate(n=Count("id"))
    )
    deliveries = dict(
        OutboxDelivery.objects.filter(created_at__gte=since)
        .values_list("status")
        .annotate(n=Count("id"))
    )
    moved = AuditRecord.objects.filter(occurred_at__gte=since, action="reschedule").count()
    plc = AuditRecord.objects.filter(occurred_at__gte=since, actor_name__startswith="plc:").count()
    written = ", ".join(f"{n:,} {kind}" for kind, n in sorted(events.items())) or "none"
    return (
        f"events written: {written}; deliveries {deliveries.get(DeliveryStatus.DELIVERED, 0):,} "
        f"delivered, {deliveries.get(DeliveryStatus.PENDING, 0):,} pending at the end, "
        f"{deliveries.get(DeliveryStatus.DEAD, 0):,} dead; orders moved by re-plans: {moved:,}; "
        f"audit records by PLCs: {plc:,}"
    )


# --- The report -------------------------------------------------------------------------------


def report(result: dict, terminals: int, action_every: float) -> bool:
    """The table; True when both targets are met."""
    samples, failures, seconds = result["samples"], result["failures"], result["seconds"]
    floor = samples.get(FLOOR) or [float("nan")]
    f50, f95 = percentile(floor, 0.5), percentile(floor, 0.95)
    print(
        f"\n{'route':44} {'requests':>8} {'req/s':>6} | {'p50':>6} {'p95':>6} {'p99':>6} "
        f"{'max':>6} ms | {'errors':>6} | {'x floor p50':>11} {'p95':>5}"
    )

    def line(label: str, values: list[float], errors: int) -> None:
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        print(
            f"{label:44} {len(values):>8,} {len(values) / seconds:>6.1f} | {p50:>6.1f} "
            f"{p95:>6.1f} {percentile(values, 0.99):>6.1f} {max(values):>6.0f}    | "
            f"{errors:>6} | {p50 / f50:>11.1f} {p95 / f95:>5.1f}"
        )

    for name in [*ROUTES, *sorted(set(samples) - set(ROUTES))]:
        if samples.get(name):
            line(name, samples[name], failures.get(name, 0))
    actions = [v for name in ACTIONS for v in samples.get(name, [])]
    everything = [v for values in samples.values() for v in values]
    print("-" * 118)
    if actions:
        line(
            "terminal actions (the POSTs above)", actions, sum(failures.get(n, 0) for n in ACTIONS)
        )
    line("all requests", everything, sum(failures.values()))
    errors = sum(failures.values())
    if result["errors"]:
        print(f"\nfirst errors ({result['error_kinds']} kinds):")
        for name, message, count in result["errors"]:
            print(f"  {count:>5} x {name}: {message[:200]}")
    notes = result["notes"]
    done = ", ".join(f"{n:,} {what}" for what, n in sorted(notes.items()))
    print(f"\nwhat the simulated users did: {done or 'nothing'}")
    polls = len(samples.get(PANEL, [])) + len(samples.get(OPERATION_LIVE, []))
    # A screen polls every POLL_S from when it was shown; an action shows a new one.
    sent = terminals * seconds / action_every * max(1, math.ceil(action_every / POLL_S) - 1)
    print(
        f"terminal polls answered: {polls:,}, {polls / sent:.0%} of the about {sent:,.0f} "
        f"that {terminals} terminals would send (fewer: the answers came late)"
    )
    missing = terminals - notes.get("terminals signed in", 0)
    if missing:
        print(f"{missing} of {terminals} terminals never signed in (see the errors)")
    worst = max(
        ((percentile(samples[n], 0.95), n) for n in ACTIONS if samples.get(n)), default=(0.0, "")
    )
    all_p95 = percentile(actions, 0.95) if actions else float("nan")
    met_errors = errors == 0 and not missing
    met_p95 = bool(actions) and worst[0] < TARGET_ACTION_P95_MS
    print(
        f"target zero errors: {'met' if met_errors else 'MISSED'} ({errors:,} of "
        f"{len(everything):,} requests)\n"
        f"target terminal actions p95 < {TARGET_ACTION_P95_MS:.0f} ms: "
        f"{'met' if met_p95 else 'MISSED'} (all actions {all_p95:.0f} ms; slowest route "
        f"{worst[1]} {worst[0]:.0f} ms)"
    )
    return met_errors and met_p95


def report_server(result: dict) -> None:
    """Client time beside the time the web workers spent on the same requests: the rest
    is waiting for a free worker (gunicorn's backlog), the network and the client."""
    client: dict[str, list[float]] = defaultdict(list)
    for name, values in result["samples"].items():
        if name in URL_NAMES:
            client[URL_NAMES[name]].extend(values)
    print(
        "\nwhere the time goes, mean per request: in Django (the web workers' own measure, "
        "/metrics) and the rest (waiting for a free worker, the network, the client)"
    )
    print(f"{'method and URL name':32} {'requests':>8} {'client':>8} {'in Django':>9} {'rest':>8}")
    for key, values in sorted(client.items(), key=lambda kv: -len(kv[1])):
        total, count = result["server"].get(key, (0.0, 0))
        if not count:
            continue
        mean, server = sum(values) / len(values), total / count * 1000
        print(f"{key:32} {len(values):>8,} {mean:>6.1f}ms {server:>7.1f}ms {mean - server:>6.1f}ms")


# --- Main -------------------------------------------------------------------------------------


def seed(args: argparse.Namespace, ports: dict[str, int], group: str) -> dict:
    """The demo plant, the load's plant, the ERP's client, and the PLCs and the ERP endpoint
    on this run's ports. Returns the load's spec."""
    from django.core.management import call_command
    from django.db import connection

    from erp_sync import services as erp_services
    from erp_sync.auth import create_api_client
    from erp_sync.models import EventType
    from mes.models import Product, WorkOrder
    from shopfloor.plc.demo import configure_demo_connections
    from shopfloor.terminal import session

    require_empty(WorkOrder.objects.exists(), "work orders")
    run = secrets.token_hex(2).upper()
    orders_each = math.ceil(args.seconds / args.action_every / ACTIONS_PER_ORDER) + 1
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    products = list(Product.objects.order_by("code").values_list("code", flat=True))
    terminals, warm = add_load_plant(args.terminals, orders_each, run)
    _client, erp_token = create_api_client(name="bench-load-erp", scope="erp")
    configure_demo_connections(base_port=ports["plc"], group=group)
    # The demo's endpoint (seed_demo registered it) is this run's ERP simulator.
    erp_services.upsert_endpoint(
        "demo-erp",
        url=f"http://127.0.0.1:{ports['erp']}/events",
        secret=ERP_SECRET,
        event_types=list(EventType.values),
        active=True,
    )
    from mes import gunicorn as web  # the configuration the Procfile's web line takes

    threads = getattr(web, "threads", 1)
    return {
        "vendor": connection.vendor,
        "web": f"{web.workers} {getattr(web, 'worker_class', 'sync')} workers"
        + (f" of {threads} threads" if threads > 1 else ""),
        "web_workers": web.workers,
        "host": f"http://127.0.0.1:{ports['web']}",
        "cookie": session.COOKIE,
        "terminals": terminals,
        "warm_up": warm,
        "orders_each": orders_each,
        "action_every": args.action_every,
        "seconds": args.seconds,
        "erp_token": erp_token,
        "erp_prefix": f"ERP-{run}-",
        "products": products,
        "result": str(VAR / "result.json"),
    }


def start_early(children: Children, ports: dict[str, int], processes: dict[str, str]):
    """Every process but beat, started while the plant is seeded (their imports take
    seconds of CPU): the ERP simulator, the PLCs, the Procfile's ``web`` and workers, and the
    load generator, which waits to be told to go. Nothing reaches the database before beat
    starts: the workers' tasks come from beat (or from its tasks), so none runs while
    seed_demo holds SQLite's write lock or before the plant has its ports. Returns the load
    generator."""
    children.start(
        "erp",
        [
            *(sys.executable, "manage.py", "erp_simulator", "--port", str(ports["erp"])),
            *("--secret", ERP_SECRET, "--state-file", str(VAR / "erp.jsonl")),
        ],
    )
    children.start(
        "plcs", [sys.executable, "manage.py", "simulate_plcs", "--base-port", str(ports["plc"])]
    )
    for name, command in processes.items():
        if name != "beat":
            children.start(name, ["/bin/sh", "-c", command])
    return children.start(
        "locust",
        [sys.executable, "-m", "bench.support.loadgen", str(VAR / "spec.json")],
        piped=True,
    )


def run_load(children: Children, driver: subprocess.Popen, spec: dict) -> None:
    """Tell the load generator to go and wait for it, stopping if any process dies."""
    Path(VAR / "spec.json").write_text(json.dumps(spec))
    if driver.stdout.readline().strip() != "ready":
        raise SystemExit(f"the load generator did not start; see {children.logs}/locust.log")
    driver.stdin.write("go\n")
    driver.stdin.flush()
    deadline = time.monotonic() + spec["seconds"] + 120
    while driver.poll() is None:
        if time.monotonic() > deadline:
            raise SystemExit("the load generator did not finish")
        for name, proc in children.procs.items():
            if proc is not driver and proc.poll() is not None:
                raise SystemExit(
                    f"{name} exited ({proc.returncode}); see {children.logs}/{name}.log"
                )
        time.sleep(0.2)
    if driver.returncode != 0 or not Path(spec["result"]).exists():
        raise SystemExit(f"the load generator failed; see {children.logs}/locust.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, help="simulated terminals (50)")
    parser.add_argument("--seconds", type=float, help="how long the load runs (300)")
    parser.add_argument("--action-every", type=float, help="seconds between actions (20)")
    parser.add_argument(
        "--broker",
        default=os.environ.get("BENCH_BROKER_URL", ""),
        help=f"Celery broker, also the shared cache when Redis (default: Redis on "
        f"127.0.0.1:6379/{REDIS_DB} if it answers, else the embedded filesystem broker)",
    )
    database_arguments(parser, quick="5 terminals for 20 s, an action every 2.5 s")
    args = sizes_of(parser.parse_args(), QUICK, FULL)

    began = time.perf_counter()
    broker = args.broker or default_broker(REDIS_DB)
    unique = uuid.uuid4().hex[:8]
    group = f"l{unique}"
    ports = {"web": free_port(), "erp": free_port()}
    env = {
        "CELERY_BROKER_URL": broker,
        "MES_CELERY_QUEUE": f"bench-load-{unique}",
        "MES_PLC_GROUPS": group,
        "MES_BIND": f"127.0.0.1:{ports['web']}",
        "PROMETHEUS_MULTIPROC_DIR": str(VAR / "metrics"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if broker.startswith("redis://"):
        env["MES_CACHE_URL"] = broker  # the API's throttle history, shared by the workers
    VAR.mkdir(parents=True, exist_ok=True)
    for stale in ("celerybeat-schedule", "erp.jsonl", "result.json", "spec.json"):
        for path in VAR.glob(f"{stale}*"):
            path.unlink()
    print("migrating and seeding the demo plant ...", flush=True)
    in_process_django(
        args.database_url, VAR, secret="bench-only-load", recreate=args.recreate, env=env
    )
    from django.conf import settings
    from django.db import connections

    from shopfloor.plc.simulator import DEMO_SCENARIO, load_scenario

    plcs = len(load_scenario(DEMO_SCENARIO).machines)
    ports["plc"] = free_port_range(plcs)
    children = Children(VAR / "logs")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit("stopped by a signal"))
    processes = procfile_processes(settings.MES_QUEUES, group, web=True)
    try:
        driver = start_early(children, ports, processes)
        spec = seed(args, ports, group)
        connections.close_all()
        print(
            f"plant: the demo plus {len(spec['terminals'])} terminals at "
            f"{math.ceil(len(spec['terminals']) / TERMINALS_PER_CENTER)} work centers, "
            f"{spec['orders_each']} released orders each; seeded after "
            f"{time.perf_counter() - began:.0f} s",
            flush=True,
        )
        children.start("beat", ["/bin/sh", "-c", processes["beat"]])
        print(f"started: {', '.join(processes)} (Procfile), erp, plcs, locust", flush=True)
        wait_for("the web server", lambda: answers(f"{spec['host']}/readyz"), 90, children, 0.2)
        answered = time.perf_counter()
        wait_for("the plant at rest", plant_at_rest, 120, children, every=0.2)
        connections.close_all()
        ready = time.perf_counter()
        print(
            f"web ready after {answered - began:.0f} s, plant at rest after {ready - began:.0f} s",
            flush=True,
        )
        print(
            f"load: {len(spec['terminals'])} terminals (poll every {POLL_S:g} s, an action "
            f"every {args.action_every:g} s), the ERP (feed every {FEED_S:g} s, "
            f"{60 / PUT_S:g} PUTs a minute), /healthz every {PROBE_S:g} s, for "
            f"{args.seconds:g} s",
            flush=True,
        )
        since = datetime.now(UTC)
        sessions = {proc.pid: name for name, proc in children.procs.items()}
        cpu_before = cpu_times(sessions)
        run_load(children, driver, spec)
        cpu_after = cpu_times(sessions)
        meanwhile = plant_meanwhile(since)
        loaded = time.perf_counter()
    finally:
        # Nothing is measured any more: a worker's warm shutdown (seconds) is not waited for.
        children.stop(grace=2)
        delete_queues(broker, settings.MES_QUEUES.names())
        if broker.startswith("redis://"):
            delete_cache_keys(broker)
    result = json.loads(Path(spec["result"]).read_text())
    print(
        f"\nLoad on {spec['vendor']}, broker {broker.split('://')[0]}"
        f"{', Redis cache' if 'MES_CACHE_URL' in env else ', no shared cache'}: "
        f"{len(spec['terminals'])} terminals, the ERP and the baseline for "
        f"{result['seconds']:.0f} s; gunicorn -c python:mes.gunicorn "
        f"({spec['web']}), the Procfile's workers and beat, "
        f"{plcs} simulated PLCs, the ERP simulator; {os.cpu_count()} CPUs"
    )
    met = report(result, len(spec["terminals"]), spec["action_every"])
    report_server(result)
    report_cpu(cpu_before, cpu_after, result["cpu_seconds"])
    print(f"plant meanwhile: {meanwhile}")
    print(
        f"run took {time.perf_counter() - began:.0f} s (set up and start "
        f"{ready - began:.0f} s, load {loaded - ready:.0f} s, stop "
        f"{time.perf_counter() - loaded:.0f} s); targets {'met' if met else 'missed'}"
    )


def delete_cache_keys(url: str) -> None:
    """The cache's keys (throttle history, trusted tokens) under the settings' prefix."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*"))
    if keys:
        client.delete(*keys)


if __name__ == "__main__":
    main()
