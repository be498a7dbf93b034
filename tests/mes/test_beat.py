"""Beat sends only while it holds the beat lease (mes.beat.LeasedScheduler).

In this process: two schedulers with one probe entry each (``args`` say which one sent),
publishing to a queue of their own on the suite's real broker and database; the queue is
read back to see who sent. Then the demo's own arrangement: two workers with embedded beat
(``worker --beat``, Procfile.demo) on the filesystem broker, as ``make demo`` started twice
would run, and the one that sends killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import queue as queue_module
import signal
import time
import uuid
from collections import Counter

import pytest
from celery.beat import BeatLazyFunc
from django.conf import settings as django_settings

from mes.beat import LeasedScheduler, beat_lease
from mes.celery import app
from mes.models import Lease
from shopfloor.models import PollGroupState
from tests.support import celery_worker, wait_until, worker_environment, worker_queues

pytestmark = pytest.mark.django_db(transaction=True)

PERIOD = 0.2  # the probe entry's


@pytest.fixture
def probe_queue():
    name = f"beat-probe-{uuid.uuid4().hex[:8]}"
    yield name
    with app.connection_for_write() as conn:
        simple = conn.SimpleQueue(name)
        simple.queue.delete()
        simple.close()


@pytest.fixture
def make_scheduler(tmp_path, probe_queue, settings):
    settings.MES_BEAT_LEASE_SECONDS = 0.9  # looks every 0.3 s
    made: list[LeasedScheduler] = []

    def make(tag: str) -> LeasedScheduler:
        scheduler = LeasedScheduler(app=app, schedule_filename=str(tmp_path / f"beat-{tag}"))
        scheduler.schedule.clear()  # the plant's entries: not these tests' business
        scheduler.update_from_dict(
            {
                "probe": {
                    "task": "tests.beat.probe",  # never run: the queue is only read
                    "schedule": PERIOD,
                    "args": [tag, BeatLazyFunc(time.time)],  # who, and when
                    "options": {"queue": probe_queue},
                }
            }
        )
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.close()


def drive(seconds: float, *schedulers: LeasedScheduler) -> None:
    """Tick each scheduler as its beat loop would, for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for scheduler in schedulers:
            scheduler.tick()
        time.sleep(0.02)


def sent_at(queue: str) -> list[tuple[str, float]]:
    """Who sent each probe task waiting in ``queue``, and when (taken off the queue)."""
    found = []
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            while True:
                try:
                    message = simple.get(timeout=0.5)
                except queue_module.Empty:
                    break
                who, at = message.payload[0]
                found.append((who, at))
                message.ack()
        finally:
            simple.close()
    return found


def sent(queue: str) -> Counter:
    """Who sent the probe tasks waiting in ``queue``, how many each."""
    return Counter(who for who, _ in sent_at(queue))


def test_of_two_beats_only_the_lease_holder_sends(make_scheduler, probe_queue):
    first, second = make_scheduler("first"), make_scheduler("second")
    started = time.monotonic()
    drive(2.0, first, second)
    assert first.holds_lease and not second.holds_lease
    assert Lease.objects.get(name=beat_lease()).holder == first._holder
    elapsed = time.monotonic() - started
    senders = sent(probe_queue)
    assert set(senders) == {"first"}, senders
    assert senders["first"] <= elapsed / PERIOD + 1  # once per period at most: no burst


def test_a_standby_beat_takes_over_when_the_holder_dies(make_scheduler, probe_queue):
    first, second = make_scheduler("first"), make_scheduler("second")
    drive(1.0, first, second)
    died = time.time()
    # The first beat dies (SIGKILL): it never looks again, its lease runs out.
    drive(2.5, second)
    lease = Lease.objects.get(name=beat_lease())
    assert lease.holder == second._holder and lease.takeovers == 1
    # Were the first only stalled, coming back it finds the lease gone and stands by.
    drive(1.0, second, first)
    assert not first.holds_lease
    by_time = sent_at(probe_queue)
    assert {who for who, at in by_time if at < died} == {"first"}
    assert {who for who, at in by_time if at >= died} == {"second"}


def test_a_beat_that_stops_cleanly_hands_over_at_once(make_scheduler, probe_queue):
    first, second = make_scheduler("first"), make_scheduler("second")
    drive(0.6, first, second)
    first.close()  # celery beat stopped with SIGTERM
    drive(0.8, second)  # less than the lease: no waiting for it to run out
    assert sent(probe_queue)["second"] >= 1
    assert Lease.objects.get(name=beat_lease()).takeovers == 0


def test_beat_uses_the_leased_scheduler():
    assert django_settings.CELERY_BEAT_SCHEDULER == "mes.beat:LeasedScheduler"
    assert app.conf.beat_scheduler == "mes.beat:LeasedScheduler"


# --- The demo's arrangement: worker --beat on the filesystem broker, started twice ---------


def beat_lines(log) -> list[dict]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and ('"celery.beat"' in line or '"mes.beat"' in line):
            lines.append(json.loads(line))
    return lines


def sends(log) -> int:
    return sum("Sending due task" in line["message"] for line in beat_lines(log))


def test_the_demo_started_twice_sends_each_task_once_and_survives_a_kill(tmp_path):
    env = worker_environment(
        tmp_path,
        "demo",
        CELERY_BROKER_URL="filesystem://",  # Procfile.demo: kombu's transport under var/
        MES_PLC_BEAT_MS="500",
        MES_BEAT_LEASE_SECONDS="2",
    )
    group = env["MES_PLC_GROUPS"]
    queues = worker_queues(env, "default", "erp", "plc")
    quiet = ("--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = celery_worker(env, tmp_path / "one", queues, beat=True, pool=quiet)
    two = celery_worker(env, tmp_path / "two", queues, beat=True, pool=quiet)
    logs = {one: one.log, two: two.log}

    def holder_process():
        lease = Lease.objects.filter(name=f"beat:{env['MES_CELERY_QUEUE']}").first()
        if lease is None or lease.expires_at is None:
            return None
        pid = int(lease.holder.split(":")[1])
        try:
            group_id = os.getpgid(pid)
        except ProcessLookupError:
            return None
        return next((w for w in (one, two) if w.proc.pid == group_id), None)

    def polled() -> int:
        state = PollGroupState.objects.filter(group=group).first()
        return state.cycles if state else 0

    try:
        one.start()
        two.start()
        wait_until("a beat holding the lease", lambda: holder_process(), 60, one, two)
        wait_until("poll cycles sent by beat", lambda: polled() >= 4, 30, one, two)
        sender = holder_process()
        standby = two if sender is one else one
        assert sends(logs[sender]) > 0
        assert sends(logs[standby]) == 0, "the second beat sent tasks too"
        assert any("stands by" in line["message"] for line in beat_lines(logs[standby]))

        sender.kill(signal.SIGKILL)
        wait_until("the standby beat sending", lambda: sends(logs[standby]) > 0, 30, standby)
        cycles = polled()
        wait_until("polling again", lambda: polled() >= cycles + 2, 30, standby)
    finally:
        one.kill()
        two.kill()
    taken = [m for m in beat_lines(logs[standby]) if "taken over" in m["message"]]
    assert len(taken) == 1
