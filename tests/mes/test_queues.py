"""Queues by urgency (mes.queues.Queues): every task goes to the queue of its urgency, the
names follow ``MES_CELERY_QUEUE`` so that runs sharing a broker stay apart, and, with real
workers split as the Procfile splits them, a re-plan that cannot finish does not delay an
outbox delivery beyond one beat interval."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from erp_sync import services as erp_services
from erp_sync.models import EventType, OutboxEvent
from mes import services
from mes.celery import app
from mes.models import WorkOrder
from mes.queues import Queues
from tests.factories import make_work_order
from tests.support import (
    celery_worker,
    erp_simulator,
    port_open,
    subprocess_database_url,
    wait_until,
    worker_environment,
    worker_queues,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "queues-test-secret-0123456789"
BEAT_SECONDS = 1.0  # MES_OUTBOX_INTERVAL_SECONDS below
TOLERANCE_SECONDS = 1.5  # the worker taking the task, the pass, the POST, a busy machine


def queue_of(task: str, options: dict | None = None, args=()) -> str:
    return app.amqp.router.route(dict(options or {}), task, args=args)["queue"].name


def test_each_task_goes_to_the_queue_of_its_urgency():
    queues: Queues = settings.MES_QUEUES
    assert queue_of("mes.tasks.replan_schedule") == queues.schedule
    assert queue_of("erp_sync.tasks.deliver_outbox") == queues.erp
    assert queue_of("shopfloor.tasks.book_plc_counts") == queues.booking
    assert queue_of("shopfloor.tasks.poll_plc_group", args=["hall-a"]) == "plc.hall-a"
    assert queue_of("shopfloor.terminal.tasks.prune_terminal_records") == queues.default
    assert len({queues.default, queues.erp, queues.schedule, queues.booking}) == 4


def test_beat_sends_every_entry_to_the_queue_of_its_urgency():
    queues: Queues = settings.MES_QUEUES
    expected = {
        "deliver-outbox": queues.erp,
        "replan-schedule": queues.schedule,
        "plc-book-counts": queues.booking,
        "prune-terminal-records": queues.default,
        **{f"plc-poll-{group}": f"plc.{group}" for group in settings.MES_PLC_GROUPS},
    }
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert {name: queue_of(e["task"], e.get("options"), e.get("args", ())) for name, e in
            schedule.items()} == expected  # fmt: skip


def test_queue_names_follow_mes_celery_queue_and_a_worker_without_q_takes_them_all(tmp_path):
    """A run with its own MES_CELERY_QUEUE (tests on a shared broker) has queues of its own."""
    code = (
        "import json, django; django.setup(); from mes.celery import app; "
        "print(json.dumps([sorted(app.amqp.queues), "
        "app.amqp.router.route({}, 'mes.tasks.replan_schedule')['queue'].name]))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "mes.settings",
        "SECRET_KEY": "queues-test",
        "MES_VAR_DIR": str(tmp_path / "var"),
        "MES_CELERY_QUEUE": "plant-7",
        "MES_PLC_GROUPS": "hall-a,hall-b",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    queues, replan = json.loads(out.stdout.strip().splitlines()[-1])
    assert queues == sorted(
        [
            "plant-7",
            "plant-7.erp",
            "plant-7.schedule",
            "plant-7.booking",
            "plc.hall-a",
            "plc.hall-b",
        ]
    )
    assert replan == "plant-7.schedule"
    assert worker_queues(env) == ",".join(
        [
            "plant-7",
            "plant-7.erp",
            "plant-7.schedule",
            "plant-7.booking",
            "plc.hall-a",
            "plc.hall-b",
        ]
    )
    assert worker_queues(env, "schedule", "booking") == "plant-7.schedule,plant-7.booking"


@pytest.mark.django_db(transaction=True)
def test_a_long_replan_does_not_delay_delivery(tmp_path, supervisor, operator):
    """Two workers as in the Procfile: one with beat taking the default, ERP and polling
    queues, one taking re-planning and booking. A machine stops; the re-plan must write an
    order whose row another connection holds locked (SELECT ... FOR UPDATE), so it waits for
    as long as the lock is held. Meanwhile a new order is created: its event reaches the ERP
    within one beat interval. Then the lock goes, and the re-plan's event arrives too."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "PostgreSQL only: a re-plan is held up by a row lock here; SQLite has only a "
            "database-wide write lock, which would stop delivery's writes as well."
        )
    env = worker_environment(
        tmp_path,
        "queues",
        MES_OUTBOX_INTERVAL_SECONDS=str(int(BEAT_SECONDS)),
        MES_SCHEDULE_DOWN_ALLOWANCE_MINUTES="45",
    )
    erp, port = erp_simulator(env, tmp_path, SECRET)
    urgent = celery_worker(
        env, tmp_path, worker_queues(env, "default", "erp", "plc"), name="worker", beat=True
    )
    planner = celery_worker(env, tmp_path, worker_queues(env, "schedule", "booking"), name="plan")
    children = (erp, urgent, planner)

    def received() -> list[dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/received", timeout=2) as r:
                return json.loads(r.read())["applied"]
        except OSError:
            return []

    def schedule_changes(number: str) -> list[dict]:
        return [
            a for a in received() if a["type"] == "schedule.changed" and a["aggregate"] == number
        ]

    wo = make_work_order(actor=supervisor, steps=1)
    op = services.start_operation(wo.operations.get(), operator=operator)
    lock = psycopg.connect(subprocess_database_url())
    try:
        for child in children:
            child.start()
        wait_until("the ERP simulator", lambda: port_open("127.0.0.1", port), 30, erp)
        erp_services.upsert_endpoint(
            "erp",
            url=f"http://127.0.0.1:{port}/events",
            secret=SECRET,
            event_types=list(EventType.values),
            active=True,
        )
        wait_until("the first plan at the ERP", lambda: schedule_changes(wo.number), 30, *children)

        # Hold the order's row; then stop its machine: the re-plan must move the order.
        lock.execute(f"SELECT id FROM {WorkOrder._meta.db_table} WHERE id = %s FOR UPDATE", [wo.pk])
        services.set_machine_state(op.machine, state="down", actor=operator)
        blocked_sql = "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"

        def replan_waits() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(blocked_sql, [lock.info.backend_pid])
                return cursor.fetchone()[0] > 0

        wait_until("the re-plan waiting for the order's lock", replan_waits, 15, *children)

        # Something the ERP must hear about while the re-plan waits.
        created_at = time.time()
        other = make_work_order(actor=supervisor, steps=1)
        event = OutboxEvent.objects.filter(aggregate_key=other.number).latest("id")

        def delivered() -> dict | None:
            return next((a for a in received() if a["id"] == str(event.event_id)), None)

        wait_until("the new order's event at the ERP", delivered, 10, *children, every=0.05)
        took = delivered()["received_at"] - created_at
        logging.getLogger(__name__).info("delivered during the re-plan after %.2f s", took)
        assert replan_waits(), "the re-plan finished early: it was not long"
        assert took < BEAT_SECONDS + TOLERANCE_SECONDS, f"delivered after {took:.2f} s"
        assert len(schedule_changes(wo.number)) == 1  # the re-plan has written nothing yet

        lock.rollback()  # the re-plan goes on: its event follows
        wait_until(
            "the re-plan's event at the ERP",
            lambda: len(schedule_changes(wo.number)) == 2,
            15,
            *children,
        )
    finally:
        lock.close()
        for child in children:
            child.kill()
    moved = OutboxEvent.objects.filter(aggregate_key=wo.number, event_type="schedule.changed")
    assert moved.latest("id").payload["reason"].startswith(f"{op.machine.code} down")
    received_by = "mes.tasks.replan_schedule["  # "Task <name>[<id>] received"
    assert received_by in (tmp_path / "plan.log").read_text(errors="replace")
    assert received_by not in (tmp_path / "worker.log").read_text(errors="replace")
