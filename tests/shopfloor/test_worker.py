"""End to end through a real Celery worker with beat (a separate process, prefork with one
child as in the demo), on the suite's broker and database: the worker polls a simulated PLC
on loopback, sees a stop within about a second, books the counted parts on the running
operation, and after a SIGKILL a new worker goes on without losing or double counting a
part."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
from django.db import connection as db_connection

from mes import services
from mes.models import Machine, Operation
from shopfloor.models import PlcStatus, UnassignedCount
from shopfloor.plc.services import set_machine_connection
from tests.factories import make_work_order
from tests.support import port_open, require

from .conftest import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = db_connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """A Celery worker with beat in its own process group, killed for sure at the end."""

    def __init__(self, env: dict[str, str], queues: str, log: Path, schedule: Path) -> None:
        self.args = [
            sys.executable, "-m", "celery", "-A", "mes", "worker", "--beat",
            "--concurrency", "1", "--loglevel", "INFO", "-Q", queues,
            "--schedule", str(schedule),
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def wait_for(what: str, condition, timeout: float, worker: Worker) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}\n--- worker log\n{worker.tail()}")


class Producer(threading.Thread):
    """Makes a part every few milliseconds on the simulated PLC's 32-bit counter."""

    def __init__(self, plc, start: int) -> None:
        super().__init__(daemon=True)
        self.plc, self.value, self.made = plc, start, 0
        self.running = threading.Event()

    def run(self) -> None:
        while self.running.is_set():
            self.value += 1
            self.made += 1
            self.plc.counter(self.value)
            time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_polls_books_and_survives_sigkill(
    plc, tmp_path, settings, supervisor, operator
):
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("redis://"):
        parsed = urlparse(broker)
        require(port_open(parsed.hostname, parsed.port or 6379), f"Redis at {broker}")
    group = f"t{uuid.uuid4().hex[:8]}"
    default_queue = f"shopfloor-test-{group}"
    settings.MES_PLC_GROUPS = ["default", group]
    env = {
        **os.environ,
        "SECRET_KEY": "worker-test",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker,
        "MES_CELERY_QUEUE": default_queue,
        "MES_VAR_DIR": str(tmp_path / "var"),
        "MES_PLC_GROUPS": group,
        "MES_PLC_BEAT_MS": "250",
        "MES_PLC_REPORT_SECONDS": "1",
        "MES_PLC_OFFLINE_AFTER": "2",
    }
    wo = make_work_order(actor=supervisor, steps=1, quantity=10_000)
    op = wo.operations.get()
    machine = op.work_center.machines.get()
    op = services.start_operation(op, operator=operator, machine=machine)
    plc.state("running")
    plc.counter(5000)
    set_machine_connection(
        machine, connection={**connection(plc.port, timeout_ms=500), "group": group}
    )
    log, schedule = tmp_path / "worker.log", tmp_path / "beat-schedule"
    queues = f"{default_queue},plc.{group}"
    first, second = Worker(env, queues, log, schedule), Worker(env, queues, log, schedule)
    producer = Producer(plc, 5000)
    try:
        first.start()
        wait_for(
            "the first read",
            lambda: Machine.objects.get(pk=machine.pk).state == "running",
            30,
            first,
        )
        plc.state("down")
        seen_after = wait_for(
            "the stop", lambda: Machine.objects.get(pk=machine.pk).state == "down", 10, first
        )
        assert seen_after < 2.5, f"the stop was seen after {seen_after:.1f} s"
        plc.state("running")
        producer.running.set()
        producer.start()
        wait_for(
            "parts booked",
            lambda: Operation.objects.get(pk=op.pk).quantity_good > 0,
            10,
            first,
        )
        first.kill(signal.SIGKILL)  # mid-production: parts counted, some booked, some not
        time.sleep(0.5)  # parts made while no worker runs
        second.start()
        time.sleep(1.0)
        producer.running.clear()
        producer.join(5)
        final = producer.value

        def all_booked() -> bool:
            status = PlcStatus.objects.get(machine=machine)
            return status.good_raw == final and status.pending_good == 0

        wait_for("every part booked", all_booked, 30, second)
    finally:
        producer.running.clear()
        first.kill()
        second.kill(signal.SIGTERM)

    booked = Operation.objects.get(pk=op.pk).quantity_good
    unassigned = sum(UnassignedCount.objects.filter(machine=machine).values_list("good", flat=True))
    assert booked + unassigned == producer.made == final - 5000
    assert unassigned == 0
    assert "poll_plc_group" in log.read_text(errors="replace")
