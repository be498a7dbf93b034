"""End to end through a real Celery worker with beat (a separate process, prefork with one
child as in the demo), on the suite's broker and database: the worker polls a simulated PLC
on loopback, sees a stop within about a second, books the counted parts on the running
operation, and after a SIGKILL a new worker goes on without losing or double counting a
part."""

from __future__ import annotations

import signal
import threading
import time
import uuid

import pytest

from mes import services
from mes.models import Machine, Operation
from shopfloor.models import PlcStatus, UnassignedCount
from shopfloor.plc.services import set_machine_connection
from tests.factories import make_work_order
from tests.support import (
    ChildProcess,
    celery_worker_with_beat,
    wait_until,
    worker_environment,
    worker_queues,
)

from .conftest import connection

# Prefork with one child, as in the demo.
PREFORK = ("--concurrency", "1")
QUIET = ("--without-gossip", "--without-mingle", "--without-heartbeat")


def wait_for(what: str, condition, timeout: float, worker: ChildProcess) -> float:
    return wait_until(what, condition, timeout, worker, every=0.05)


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
    group = f"t{uuid.uuid4().hex[:8]}"
    settings.MES_PLC_GROUPS = ["default", group]
    env = worker_environment(
        tmp_path,
        "shopfloor",
        MES_PLC_GROUPS=group,
        MES_PLC_BEAT_MS="250",
        MES_PLC_REPORT_SECONDS="1",
        MES_PLC_OFFLINE_AFTER="2",
    )
    wo = make_work_order(actor=supervisor, steps=1, quantity=10_000)
    op = wo.operations.get()
    machine = op.work_center.machines.get()
    op = services.start_operation(op, operator=operator, machine=machine)
    plc.state("running")
    plc.counter(5000)
    set_machine_connection(
        machine, connection={**connection(plc.port, timeout_ms=500), "group": group}
    )
    queues = worker_queues(env)  # polling and booking, with the rest
    first, second = (
        celery_worker_with_beat(env, tmp_path, queues, pool=PREFORK, extra=QUIET) for _ in range(2)
    )
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
    assert "poll_plc_group" in (tmp_path / "worker.log").read_text(errors="replace")
