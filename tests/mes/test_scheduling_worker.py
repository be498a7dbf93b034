"""End to end: a machine stops, the worker's beat re-plans, and the ERP (the simulator on
loopback) gets ``schedule.changed`` within seconds, on the suite's broker and database."""

from __future__ import annotations

import json
import logging
import urllib.request

import pytest

from erp_sync import services as erp_services
from erp_sync.models import DeliveryStatus, OutboxDelivery, OutboxEvent
from mes import services
from mes.models import WorkOrder
from tests.factories import make_work_order
from tests.support import (
    celery_worker_with_beat,
    erp_simulator,
    port_open,
    wait_until,
    worker_environment,
    worker_queues,
)

SECRET = "schedule-test-secret-0123456789"


@pytest.mark.django_db(transaction=True)
def test_a_stopped_machine_reaches_the_erp_as_a_schedule_change(tmp_path, supervisor, operator):
    env = worker_environment(tmp_path, "schedule", MES_SCHEDULE_DOWN_ALLOWANCE_MINUTES="45")
    erp, port = erp_simulator(env, tmp_path, SECRET)
    worker = celery_worker_with_beat(env, tmp_path, worker_queues(env))

    def schedule_changes_received() -> list[dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/received", timeout=2) as r:
                applied = json.loads(r.read())["applied"]
        except OSError:
            return []
        return [a for a in applied if a["type"] == "schedule.changed"]

    wo = make_work_order(actor=supervisor, steps=1)
    op = services.start_operation(wo.operations.get(), operator=operator)
    try:
        erp.start()
        wait_until("the ERP simulator", lambda: port_open("127.0.0.1", port), 30, erp)
        erp_services.upsert_endpoint(
            "erp",
            url=f"http://127.0.0.1:{port}/events",
            secret=SECRET,
            event_types=["schedule.changed"],
            active=True,
        )
        worker.start()
        wait_until("the first plan at the ERP", lambda: schedule_changes_received(), 60, worker)
        planned_end = WorkOrder.objects.get(pk=wo.pk).projected_end
        assert planned_end is not None

        # What the PLC poller does when the machine stops.
        services.set_machine_state(op.machine, state="down", actor=operator)
        took = wait_until(
            "the new plan at the ERP", lambda: len(schedule_changes_received()) >= 2, 30, worker
        )
        logging.getLogger(__name__).info("machine down -> ERP told after %.1f s", took)

        moved = WorkOrder.objects.get(pk=wo.pk).projected_end
        assert (moved - planned_end).total_seconds() > 40 * 60  # the repair allowance
        event = OutboxEvent.objects.filter(event_type="schedule.changed").latest("id")
        assert event.payload["reason"].startswith(f"{op.machine.code} down")
        assert event.payload["previous_projected_end"] is not None
        assert not OutboxDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()
        assert [a["aggregate"] for a in schedule_changes_received()] == [wo.number, wo.number]
    finally:
        worker.kill()
        erp.kill()
