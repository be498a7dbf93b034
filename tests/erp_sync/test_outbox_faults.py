"""The outbox under faults, end to end: a real Celery worker (with beat) delivering to the
ERP simulator as a separate process, over the suite's real broker (Redis in CI's
PostgreSQL run, kombu's filesystem transport otherwise) and database.

The ERP fails half of the requests, then goes away for a while, and the worker is killed
with SIGKILL while a delivery is in flight. Afterwards every event is delivered, the ERP
applied each idempotency key exactly once, and per work order the order is preserved.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pytest

from erp_sync import services as erp_services
from erp_sync.models import DeliveryStatus, EventType, OutboxDelivery, OutboxEvent
from mes import services
from tests.factories import make_routing, make_work_order
from tests.support import (
    celery_worker_with_beat,
    erp_simulator,
    port_open,
    wait_until,
    worker_environment,
    worker_queues,
)

SECRET = "fault-test-secret-0123456789"


@pytest.fixture
def environment(tmp_path):
    return worker_environment(
        tmp_path,
        "fault",
        MES_OUTBOX_INTERVAL_SECONDS="1",
        MES_OUTBOX_BACKOFF_BASE="1",
        MES_OUTBOX_BACKOFF_CAP="2",
        MES_OUTBOX_LEASE_SECONDS="3",
        MES_OUTBOX_TIMEOUT="3",
        MES_OUTBOX_PASS_SECONDS="3",
    )


@pytest.mark.django_db(transaction=True)
def test_outbox_survives_failing_erp_outage_and_killed_worker(
    environment, tmp_path, supervisor, operator
):
    state = str(tmp_path / "erp.jsonl")
    erp, port = erp_simulator(
        environment, tmp_path, SECRET, "--state-file", state, "--fail-rate", "0.5", "--seed", "7"
    )
    base = f"http://127.0.0.1:{port}"
    worker = celery_worker_with_beat(environment, tmp_path, worker_queues(environment))

    def received() -> dict:
        try:
            with urllib.request.urlopen(f"{base}/received", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return {"applied": [], "duplicates": 0}

    def control(**change) -> None:
        request = urllib.request.Request(
            f"{base}/_control", data=json.dumps(change).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    def produce(orders: int) -> None:
        routing = make_routing(2)
        for _ in range(orders):
            wo = make_work_order(actor=supervisor, routing=routing)
            op = services.start_operation(wo.operations.get(sequence=10), operator=operator)
            services.report_quantity(op, actor=operator, good=5)
            services.complete_operation(op, actor=operator)

    try:
        erp.start()
        wait_until("the ERP simulator", lambda: port_open("127.0.0.1", port), 30, erp)
        erp_services.upsert_endpoint(
            "erp",
            url=f"{base}/events",
            secret=SECRET,
            event_types=list(EventType.values),
            active=True,
        )
        produce(4)
        worker.start()
        wait_until("first deliveries", lambda: len(received()["applied"]) >= 8, 60, erp, worker)

        # The ERP goes away for a while; the floor keeps producing.
        erp.kill(signal.SIGTERM)
        produce(2)
        time.sleep(3)
        erp.start()
        wait_until("the ERP back", lambda: port_open("127.0.0.1", port), 30, erp)

        # A delivery in flight (the ERP applies it, then answers slowly) when the worker dies.
        control(fail_rate=1.0, fail_mode="slow", slow_seconds=2.5)
        before = len(received()["applied"])
        wait_until(
            "a delivery in flight", lambda: len(received()["applied"]) > before, 60, erp, worker
        )
        worker.kill(signal.SIGKILL)
        control(fail_rate=0.5, fail_mode="500")
        produce(1)
        worker.start()

        wait_until(
            "every event delivered",
            lambda: not OutboxDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists(),
            120,
            erp,
            worker,
        )
        state = received()
    finally:
        worker.kill()
        erp.kill()

    events = list(OutboxEvent.objects.order_by("id"))
    applied = [record["id"] for record in state["applied"]]
    assert len(applied) == len(set(applied)), "an idempotency key was applied twice"
    assert sorted(applied) == sorted(str(e.event_id) for e in events)  # nothing lost
    assert state["duplicates"] >= 1  # the in-flight delivery was retried and deduplicated
    by_id = {str(e.event_id): e.aggregate_key for e in events}
    applied_order: dict[str, list[str]] = {}
    for key in applied:
        applied_order.setdefault(by_id[key], []).append(key)
    outbox_order: dict[str, list[str]] = {}
    for e in events:
        outbox_order.setdefault(e.aggregate_key, []).append(str(e.event_id))
    assert applied_order == outbox_order  # in order per work order
    assert OutboxDelivery.objects.filter(attempts__gt=1).exists()
