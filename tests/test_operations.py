"""What a plant's IT watches: /healthz, /readyz (503 naming the failing part, checked with
a real process against an unreachable database and broker), Prometheus metrics at /metrics
(token or loopback) and JSON log lines carrying the request id, also into Celery tasks."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families
from pythonjsonlogger.json import JsonFormatter

from mes.scheduling.services import replan_if_needed
from shopfloor.plc.services import record_poll_beat

from .factories import make_work_order
from .support import (
    celery_worker,
    free_port,
    run_django,
    wait_until,
    worker_environment,
    worker_queues,
)

ROOT = Path(__file__).resolve().parent.parent
FAR = {"REMOTE_ADDR": "10.20.30.40"}


# --- Health ------------------------------------------------------------------------------------


def test_healthz_answers_without_touching_the_database(client, db):
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/healthz", **FAR)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert len(queries) == 0
    assert response["Cache-Control"].startswith("max-age=0")


def test_readyz_is_ready_when_database_migrations_and_broker_are(client, db):
    response = client.get("/readyz", **FAR)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "broker": "ok"},
    }


def readyz_in_a_process(tmp_path, **env) -> tuple[int, dict]:
    """/readyz answered by a separate process with ``env`` (a real connection attempt)."""
    script = (
        "import json\n"
        "from django.test import Client\n"
        "r = Client().get('/readyz')\n"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))\n"
    )
    full = {
        **os.environ,
        "SECRET_KEY": "readyz-test",
        "MES_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        **env,
    }
    full.pop("MES_CACHE_URL", None)
    done = run_django(script, full)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["status"], answer["body"]


def test_readyz_names_a_database_that_does_not_answer(tmp_path):
    status, body = readyz_in_a_process(
        tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nothing"
    )
    assert status == 503
    assert body["failing"] == ["database", "migrations"]
    assert body["checks"]["database"] == "failing"
    assert "127.0.0.1" not in json.dumps(body)  # what fails, not where or why


def test_readyz_names_a_broker_that_does_not_answer(tmp_path):
    started = time.monotonic()
    status, body = readyz_in_a_process(
        tmp_path, CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    assert status == 503
    assert body["checks"]["broker"] == "failing" and "broker" in body["failing"]
    assert time.monotonic() - started < 30


def test_readyz_names_migrations_not_applied(tmp_path):
    status, body = readyz_in_a_process(tmp_path)  # an empty SQLite file: nothing migrated
    assert status == 503
    assert body["checks"] == {"database": "ok", "migrations": "pending", "broker": "ok"}
    assert body["failing"] == ["migrations"]


# --- Metrics -----------------------------------------------------------------------------------


def scrape(client, **headers) -> str:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample of the exposition text (prometheus-client's own parser)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    raise AssertionError(f"no sample {name} {labels} in:\n{text[:3000]}")


def test_metrics_are_refused_to_far_clients_without_the_token(client, db, settings):
    settings.MES_METRICS_TOKEN = ""
    refused = client.get("/metrics", **FAR)
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    # Through a proxy on this host, loopback says nothing about the client.
    proxied = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert proxied.status_code == 403
    settings.MES_METRICS_TOKEN = "s3cret-metrics-token"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    wrong = {"HTTP_AUTHORIZATION": "Bearer nope"}
    assert client.get("/metrics", **FAR, **wrong).status_code == 403
    scrape(client, **FAR, HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")


def test_metrics_report_requests_outbox_polling_and_replans(client, db, supervisor, settings):
    settings.MES_METRICS_TOKEN = ""
    before = scrape(client, REMOTE_ADDR="127.0.0.1")
    login = {"route": "login", "method": "GET", "status": "2xx"}
    try:
        seen = sample(before, "mes_http_request_duration_seconds_count", **login)
    except AssertionError:
        seen = 0.0
    client.get(reverse("login"))
    make_work_order(actor=supervisor)  # a released order: work_order.* events wait
    record_poll_beat("default", cycles=2, reads_failed=3, seconds=0.125)
    record_poll_beat("default", cycles=1, reads_failed=0, seconds=0.25)
    assert replan_if_needed() is not None

    text = scrape(client, REMOTE_ADDR="127.0.0.1")
    assert sample(text, "mes_http_request_duration_seconds_count", **login) == seen + 1
    assert sample(text, "mes_database_up") == 1
    assert sample(text, "mes_outbox_pending") >= 0
    assert sample(text, "mes_outbox_oldest_pending_age_seconds") >= 0
    assert sample(text, "mes_plc_poll_cycle_seconds", group="default") == 0.25
    assert sample(text, "mes_plc_poll_cycles_total", group="default") == 3
    assert sample(text, "mes_plc_poll_reads_failed_total", group="default") == 3
    assert sample(text, "mes_plc_poll_last_beat_age_seconds", group="default") < 60
    assert sample(text, "mes_schedule_replan_seconds") >= 0
    assert sample(text, "mes_schedule_age_seconds") < 60


def test_terminal_actions_are_counted(db, op10_terminal_post):
    from mes.metrics import TERMINAL_ACTIONS

    before = TERMINAL_ACTIONS.labels("act")._value.get()
    op10_terminal_post()
    assert TERMINAL_ACTIONS.labels("act")._value.get() == before + 1


@pytest.fixture
def op10_terminal_post(client, supervisor, operator):
    from .factories import enrol_terminal, make_routing

    wo = make_work_order(actor=supervisor, routing=make_routing(1))
    op = wo.operations.get()
    from shopfloor.terminal import session

    client.cookies[session.COOKIE] = enrol_terminal(op.work_center)
    signed_in = client.post(reverse("terminal:sign_in"), {"badge": "1001", "pin": "1234"})
    assert signed_in.status_code == 302 and signed_in["Location"] == reverse("terminal:home")
    return lambda: client.post(reverse("terminal:act", args=[op.pk, "start"]), {})


# --- Logs --------------------------------------------------------------------------------------


def json_line(record: logging.LogRecord, settings) -> dict:
    options = {k: v for k, v in settings.LOGGING["formatters"]["json"].items() if k != "()"}
    return json.loads(JsonFormatter(**options).format(record))


def test_a_request_logs_json_lines_with_its_request_id(client, db, caplog, settings):
    with caplog.at_level(logging.WARNING, logger="mes.security"):
        response = client.post(
            reverse("login"),
            {"username": "nobody", "password": "wrong-password"},
            HTTP_X_REQUEST_ID="req-0123456789",
        )
    assert response["X-Request-ID"] == "req-0123456789"
    record = next(r for r in caplog.records if r.name == "mes.security")
    line = json_line(record, settings)
    assert line["request_id"] == "req-0123456789"
    assert line["level"] == "WARNING" and line["logger"] == "mes.security"
    assert line["security_event"] == "sign_in_failed" and "time" in line
    assert "wrong-password" not in json.dumps(line)


def test_a_malformed_request_id_is_replaced(client, db):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db(transaction=True)
def test_a_task_a_request_sends_logs_with_the_requests_id(tmp_path):
    env = worker_environment(tmp_path, "logs", MES_LOG_FORMAT="json", LOG_LEVEL="INFO")
    worker = celery_worker(env, tmp_path, worker_queues(env, "schedule"), name="logs")
    worker.start()
    try:
        # A web process's request sends the task: the same environment as the worker.
        publish = (
            "import django; django.setup()\n"
            "from mes import logs\n"
            "from mes.celery import app\n"
            "logs.request_id.set('req-task-4242abcd')\n"
            "app.send_task('mes.tasks.replan_schedule', queue={!r})\n"
        ).format(f"{env['MES_CELERY_QUEUE']}.schedule")
        subprocess.run(
            [sys.executable, "-c", publish],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "mes.settings"},
            check=True,
            timeout=60,
        )

        def lines() -> list[dict]:
            out = []
            for raw in worker.tail(200_000).splitlines():
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    continue
            return out

        wait_until(
            "the worker logs the task with the request id",
            lambda: any(d.get("request_id") == "req-task-4242abcd" for d in lines()),
            60,
            worker,
        )
    finally:
        worker.kill()
