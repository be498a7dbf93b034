"""Scale-out under SIGKILL, with real processes on Redis (issue 12).

Every kind of process runs twice, as a plant runs them for fail-over: two workers take the
same poll queue ``plc.<group>``, two take the default, ERP, schedule and booking queues,
and two ``celery beat`` run. The ERP simulator and three simulated PLCs (Modbus TCP on
loopback) stand in for the plant. Mid-run one of each kind is killed with SIGKILL: the ERP
worker while it has deliveries in flight, the poll worker in the middle of a window (it
holds the group's lease), then the beat that sends.

What the processes recorded is then checked: the poll workers' window log lines (debug),
the beats' "Sending due task" lines, the ERP's applied and duplicate keys, the database.

- No two windows of the group overlap, and no more than three of the group's poll tasks
  are sent between the starts of two windows: the group is never left unpolled for more
  than two cycles.
- One beat sends at a time: every task is sent by the beat that took the lease last
  (so never by both), the standby takes over after the kill, and no entry is sent more
  than once per period.
- Every outbox event is applied by the ERP exactly once, and the only deliveries sent
  twice are those the killed worker held in flight.

Run on the suite's database (SQLite or PostgreSQL) and Redis (the suite's broker when it is
Redis, else 127.0.0.1:6379/15): without Redis the test skips, under CI it fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from erp_sync import services as erp_services
from erp_sync.models import DeliveryStatus, EventType, OutboxDelivery, OutboxEvent
from erp_sync.outbox import NewEvent, record_events
from mes.models import Lease
from shopfloor.models import PollGroupState
from shopfloor.plc.modbus import LoopThread
from shopfloor.plc.services import set_machine_connection
from shopfloor.plc.simulator import PlcServer, RegisterBank
from tests.factories import MachineFactory
from tests.shopfloor.conftest import Plc, connection
from tests.support import (
    ChildProcess,
    celery_beat,
    celery_worker,
    erp_simulator,
    port_open,
    redis_broker,
    wait_until,
    worker_environment,
    worker_queues,
)

logger = logging.getLogger(__name__)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECRET = "scale-out-test-secret-0123456789"
BEAT_SECONDS = 1.0  # MES_PLC_BEAT_MS: one poll task per second
PREFORK = ("--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat")
EVENTS = 150


@dataclass
class Window:
    holder: str
    started: float
    ended: float | None  # None: killed before it ended


def json_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):  # a line cut short by SIGKILL
                lines.append(json.loads(line))
    return lines


def at(line: dict) -> float:
    return datetime.fromisoformat(line["time"]).timestamp()


def windows(*logs: Path) -> list[Window]:
    """The poll windows the workers logged (debug lines), by start."""
    found: dict[str, Window] = {}
    for log in logs:
        for line in json_lines(log):
            if "window_started" in line:
                window = found.setdefault(
                    line["lease_holder"], Window(line["lease_holder"], line["window_started"], None)
                )
                window.ended = line.get("window_ended", window.ended)
    return sorted(found.values(), key=lambda w: w.started)


def sends(log: Path) -> list[tuple[float, str]]:
    """When this beat sent which schedule entry."""
    prefix = "Scheduler: Sending due task "
    return [
        (at(line), line["message"][len(prefix) :].split(" ")[0])
        for line in json_lines(log)
        if line.get("message", "").startswith(prefix)
    ]


def takes(log: Path) -> list[float]:
    """When this beat took the beat lease (and began to send)."""
    return [at(line) for line in json_lines(log) if "this beat sends" in line.get("message", "")]


def pgid_of(holder: str) -> int | None:
    """The process group of a lease holder (``host:pid:token``): which child of the test."""
    try:
        return os.getpgid(int(holder.split(":")[1]))
    except (ProcessLookupError, IndexError, ValueError):
        return None


@pytest.fixture
def plcs():
    """Three simulated PLCs on loopback, each reporting a running machine."""
    loop = LoopThread(name="scale-plcs")
    servers = []
    for _ in range(3):
        server = PlcServer(RegisterBank(), port=0)
        loop.run(server.start(), timeout=10)
        plc = Plc(loop, server)
        plc.state("running")
        plc.counter(1000)
        servers.append(plc)
    yield servers
    for plc in servers:
        plc.stop()
    loop.stop()


def test_killing_one_process_of_each_kind_loses_and_doubles_nothing(tmp_path, plcs, settings):
    broker = redis_broker()
    env = worker_environment(
        tmp_path,
        "scale",
        CELERY_BROKER_URL=broker,
        MES_PLC_BEAT_MS=str(int(BEAT_SECONDS * 1000)),
        MES_BEAT_LEASE_SECONDS="3",
        MES_OUTBOX_INTERVAL_SECONDS="1",
        MES_OUTBOX_LEASE_SECONDS="3",
        MES_OUTBOX_TIMEOUT="2",
        MES_OUTBOX_PASS_SECONDS="3",
        MES_OUTBOX_CONCURRENCY="4",
        MES_SCHEDULE_CHECK_SECONDS="3600",  # no re-plans: their events would come and go
    )
    group = env["MES_PLC_GROUPS"]
    settings.MES_PLC_GROUPS = ["default", group]
    for plc in plcs:
        machine = MachineFactory()
        # Polled once a beat (the default interval): a window is one cycle.
        set_machine_connection(
            machine, connection={**connection(plc.port, timeout_ms=500), "group": group}
        )

    # Every event is applied, then answered after 0.2 s: deliveries stay in flight a while.
    slow = ("--fail-rate", "1.0", "--fail-mode", "slow", "--slow-seconds", "0.2")
    erp, port = erp_simulator(
        env, tmp_path, SECRET, "--state-file", str(tmp_path / "erp.jsonl"), *slow
    )
    poll_env = {**env, "LOG_LEVEL": "DEBUG"}  # the window lines
    pollers = [
        celery_worker(poll_env, tmp_path, f"plc.{group}", name=f"plc{i}", pool=PREFORK)
        for i in (1, 2)
    ]
    others = worker_queues(env, "default", "erp", "schedule", "booking")
    workers = [
        celery_worker(env, tmp_path, others, name=f"worker{i}", pool=PREFORK) for i in (1, 2)
    ]
    beats = [celery_beat(env, tmp_path, name=f"beat{i}") for i in (1, 2)]
    children = [erp, *pollers, *workers, *beats]
    beat_lease, poll_lease = f"beat:{env['MES_CELERY_QUEUE']}", f"plc:{group}"

    def received() -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/received", timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return {"applied": [], "duplicate_ids": []}

    def holder_of(name: str) -> str | None:
        row = Lease.objects.filter(name=name).values_list("holder", "expires_at").first()
        return row[0] if row and row[1] is not None else None

    def child_of(holder: str | None, among: list[ChildProcess]) -> ChildProcess | None:
        group_id = pgid_of(holder) if holder else None
        return next((c for c in among if c.proc.pid == group_id), None)

    def cycles() -> int:
        state = PollGroupState.objects.filter(group=group).first()
        return state.cycles if state else 0

    def leased() -> dict[int, datetime]:
        rows = OutboxDelivery.objects.filter(
            status=DeliveryStatus.PENDING, locked_until__gt=timezone.now()
        )
        return dict(rows.values_list("pk", "locked_until"))

    def began(child: ChildProcess, holder: str) -> bool:
        return any(w.holder == holder for w in windows(child.log))

    def ready(child: ChildProcess) -> bool:
        return any(line.get("message", "").endswith(" ready.") for line in json_lines(child.log))

    erp_services.upsert_endpoint(
        "erp",
        url=f"http://127.0.0.1:{port}/events",
        secret=SECRET,
        event_types=list(EventType.values),
        active=True,
    )
    try:
        # The poll workers last: their first windows, the slowest (connections, the heap
        # frozen), do not have to share the CPU with five processes starting up.
        for child in (erp, *workers, *beats):
            child.start()
        wait_until("the ERP simulator", lambda: port_open("127.0.0.1", port), 60, erp)
        wait_until("the workers", lambda: all(map(ready, workers)), 60, *children)
        wait_until("a beat sending", lambda: child_of(holder_of(beat_lease), beats), 30, *beats)
        for child in pollers:
            child.start()
        wait_until("the poll workers", lambda: all(map(ready, pollers)), 60, *pollers)
        wait_until("polling", lambda: cycles() >= 3, 30, *children)
        # In one transaction: a test that kept writing would hold SQLite's write lock
        # against the processes' leases.
        with transaction.atomic():
            now = timezone.now()
            record_events(
                [
                    NewEvent(EventType.WORK_ORDER_UPDATED, f"WO-{i:04d}", {"number": i}, now)
                    for i in range(EVENTS)
                ]
            )
        wait_until("deliveries", lambda: len(received()["applied"]) >= 10, 30, *children)

        # 1. An ERP worker, caught (stopped) while it holds deliveries in flight: those
        # leased before and still leased, unchanged, a second later (the other worker's
        # calls end within 0.2 s and their leases go).
        held: set[int] = set()
        deadline = time.monotonic() + 30
        while not held and time.monotonic() < deadline:
            for victim in workers:
                os.killpg(victim.proc.pid, signal.SIGSTOP)
                before = leased()
                time.sleep(1.0)
                after = leased()
                held = {pk for pk, until in before.items() if after.get(pk) == until}
                if held:
                    break
                os.killpg(victim.proc.pid, signal.SIGCONT)
        assert held, "no ERP worker was caught with a delivery in flight"
        victim.kill(signal.SIGKILL)
        erp_survivor = next(w for w in workers if w is not victim)

        # 2. A poll worker in the middle of a window, holding the group's lease.
        deadline, plc_victim = time.monotonic() + 30, None
        while plc_victim is None and time.monotonic() < deadline:
            holder = holder_of(poll_lease)
            candidate = child_of(holder, pollers)
            if candidate is None:
                time.sleep(0.005)
                continue
            os.killpg(candidate.proc.pid, signal.SIGSTOP)
            # Still in that window, frozen, and past logging its start.
            if holder_of(poll_lease) == holder and began(candidate, holder):
                plc_victim, killed_holder = candidate, holder
            else:
                os.killpg(candidate.proc.pid, signal.SIGCONT)
        assert plc_victim is not None, "no poll worker was caught in a window"
        plc_victim.kill(signal.SIGKILL)
        plc_killed_at = time.time()
        plc_survivor = next(p for p in pollers if p is not plc_victim)
        polled = cycles()
        wait_until("the other poll worker", lambda: cycles() >= polled + 3, 30, plc_survivor)
        assert Lease.objects.get(name=poll_lease).takeovers == 1

        undelivered = OutboxDelivery.objects.exclude(status=DeliveryStatus.DELIVERED)
        wait_until("every delivery", lambda: not undelivered.exists(), 60, erp, erp_survivor)

        # 3. The beat that sends.
        beat_victim = child_of(holder_of(beat_lease), beats)
        assert beat_victim is not None
        beat_victim.kill(signal.SIGKILL)
        beat_killed_at = time.time()
        standby = next(b for b in beats if b is not beat_victim)
        wait_until("the standby beat", lambda: child_of(holder_of(beat_lease), beats), 30, standby)
        polled = cycles()
        wait_until("polling again", lambda: cycles() >= polled + 3, 30, standby, plc_survivor)
        ended_at = time.time()
        state = received()
    finally:
        stopped_at = time.time()
        for child in children:
            child.kill()
        forget_queues(broker, group[1:])

    # --- Polling: one window at a time, none missing for more than two cycles ------------
    found = windows(*(p.log for p in pollers))
    unfinished = [w for w in found if w.ended is None]
    # The window killed mid-way, and maybe one the end of the test cut short.
    assert killed_holder in {w.holder for w in unfinished}
    for window in unfinished:
        if window.holder == killed_holder:
            window.ended = plc_killed_at
        else:  # the last one, cut short by the end of the test
            assert window is found[-1], window
            window.ended = stopped_at
    assert len(found) >= 7
    for earlier, later in itertools.pairwise(found):
        assert later.started >= earlier.ended, f"windows overlap: {earlier} and {later}"
    assert not [w for w in windows(plc_victim.log) if w.started > plc_killed_at]
    assert [w for w in windows(plc_survivor.log) if w.started > plc_killed_at]

    poll_sends = sorted(
        t for b in beats for t, entry in sends(b.log) if entry == f"plc-poll-{group}"
    )
    for earlier, later in itertools.pairwise(found):
        between = [t for t in poll_sends if earlier.started < t < later.started]
        assert len(between) <= 3, f"{len(between)} poll tasks sent between two windows"

    # --- Beat: one sends at a time, each entry at most once per period --------------------
    # Who holds the beat lease when: each beat logs when it takes it. A beat may lose it
    # while stalled (the other takes it over), but never sends after that until it takes
    # it again: every send is by the beat that took the lease last.
    timeline = sorted(
        [(t, "takes", b) for b in beats for t in takes(b.log)]
        + [(t, "sends", b) for b in beats for t, _ in sends(b.log)],
        key=lambda item: item[0],
    )
    holding = None
    for t, what, beat in timeline:
        if what == "takes":
            holding = beat
        else:
            assert beat is holding, f"{beat.log.name} sent at {t} while the other held the lease"
    assert not [t for t, _ in sends(beat_victim.log) if t > beat_killed_at]
    after_kill = [t for t in takes(standby.log) if t > beat_killed_at]
    assert after_kill and any(t > after_kill[0] for t, _ in sends(standby.log))
    sent = sorted(item for b in beats for item in sends(b.log))
    periods = {f"plc-poll-{group}": BEAT_SECONDS, "deliver-outbox": 1.0, "plc-book-counts": 5.0}
    handovers = Lease.objects.get(name=beat_lease).takeovers  # the new holder sends at once
    for entry, period in periods.items():
        times = [t for t, e in sent if e == entry]
        assert len(times) <= (times[-1] - times[0]) / period + 1 + handovers, (entry, times)

    # --- Outbox: every event applied once; re-sent only what the killed worker held -------
    events = {str(e) for e in OutboxEvent.objects.values_list("event_id", flat=True)}
    applied = [record["id"] for record in state["applied"]]
    assert len(events) == EVENTS
    assert len(applied) == len(set(applied)), "an event was applied twice"
    assert set(applied) == events, "an event was lost"
    in_flight = {
        str(e)
        for e in OutboxDelivery.objects.filter(pk__in=held).values_list(
            "event__event_id", flat=True
        )
    }
    resent = Counter(state["duplicate_ids"])
    assert set(resent) <= in_flight and all(n == 1 for n in resent.values()), (resent, in_flight)
    logger.info(  # for the record (--log-cli-level=INFO): what the run looked like
        f"\nscale-out: {len(found)} windows, {len(sent)} tasks sent by beat, {len(events)} "
        f"events, {len(held)} held in flight by the killed worker, {sum(resent.values())} "
        f"re-sent; beat taken over after {after_kill[0] - beat_killed_at:.1f} s, "
        f"run {ended_at - plc_killed_at:.0f} s after the first kill"
    )


def forget_queues(broker: str, token: str) -> None:
    """Delete this run's queues from Redis (their names carry ``token``)."""
    try:
        client = redis.Redis.from_url(broker)
        keys = list(client.scan_iter(match=f"*{token}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
