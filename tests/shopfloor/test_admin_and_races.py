"""The admin configures through the services; booking and polling racing each other on
the same machines never lose or double a part."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from mes import services
from mes.models import AuditRecord, Operation
from shopfloor.models import (
    DeviceProfile,
    DowntimeReason,
    DowntimeRecord,
    MachineConnection,
    PlcStatus,
)
from shopfloor.plc.services import (
    ReadWrite,
    book_pending_counts,
    save_device_profile,
    set_machine_connection,
    store_poll_results,
)
from tests.factories import MachineFactory, make_work_order

from .conftest import connection as connection_body
from .conftest import register_map


@pytest.mark.django_db
def test_admin_pages_render_and_save_through_the_services(client, admin_user):
    client.force_login(admin_user)
    machine = MachineFactory(code="PRESS-9")
    save_device_profile(code="P", name="Press", registers=register_map())
    set_machine_connection(MachineFactory(), connection=connection_body(5020))
    for model in (
        "deviceprofile",
        "machineconnection",
        "plcstatus",
        "machinestateevent",
        "downtimerecord",
        "unassignedcount",
    ):
        response = client.get(reverse(f"admin:shopfloor_{model}_changelist"))
        assert response.status_code == 200, model
    assert client.get(reverse("admin:shopfloor_machineconnection_add")).status_code == 200

    form = {
        "machine": machine.pk,
        "host": "10.0.0.9",
        "port": "502",
        "unit_id": "1",
        "poll_interval_ms": "1000",
        "timeout_ms": "50000",
        "profile": DeviceProfile.objects.get(code="P").pk,
        "register_map": "",
        "group": "default",
        "enabled": "on",
    }
    refused = client.post(reverse("admin:shopfloor_machineconnection_add"), form)
    assert refused.status_code == 200
    assert "Must be between 20 and 10000." in refused.content.decode()
    assert not MachineConnection.objects.filter(machine=machine).exists()

    saved = client.post(
        reverse("admin:shopfloor_machineconnection_add"), {**form, "timeout_ms": "400"}
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    conn = MachineConnection.objects.get(machine=machine)
    assert (conn.host, conn.timeout_ms, conn.profile.code, conn.register_map) == (
        "10.0.0.9",
        400,
        "P",
        None,
    )
    assert PlcStatus.objects.filter(machine=machine).exists()


@pytest.mark.django_db
def test_a_downtime_reason_is_corrected_in_the_admin_through_the_service(client, admin_user):
    client.force_login(admin_user)
    record = DowntimeRecord.objects.create(
        machine=MachineFactory(), cause="down", started_at=timezone.now()
    )
    url = reverse("admin:shopfloor_downtimerecord_change", args=[record.pk])
    assert client.get(url).status_code == 200
    spindle = DowntimeReason.objects.get(code="MECH-SPINDLE")

    response = client.post(url, {"reason_choice": spindle.pk, "note": "bearing noise"})
    assert response.status_code == 302
    record.refresh_from_db()
    assert record.reason_choice == spindle
    assert record.reason == "Mechanical > Spindle (unplanned): bearing noise"
    assert record.reason_by == admin_user
    audit = AuditRecord.objects.get(action="downtime_reason")
    assert (audit.entity_type, audit.entity_id) == ("machine", record.machine_id)

    # A category is not a reason: the form refuses it and nothing changes.
    category = DowntimeReason.objects.get(code="MECH")
    refused = client.post(url, {"reason_choice": category.pk, "note": ""})
    assert refused.status_code == 200
    record.refresh_from_db()
    assert record.reason_choice == spindle
    assert AuditRecord.objects.filter(action="downtime_reason").count() == 1
    # Nothing at all: refused with words, nothing changes.
    empty = client.post(url, {"reason_choice": "", "note": "  "})
    assert "Pick a reason from the tree or write a note." in empty.content.decode()
    record.refresh_from_db()
    assert record.reason_choice == spindle


@pytest.mark.django_db(transaction=True)
def test_booking_racing_the_poller_loses_and_doubles_nothing(supervisor, operator):
    wo = make_work_order(actor=supervisor, steps=1, quantity=100_000)
    op = wo.operations.get()
    machine = op.work_center.machines.get()
    op = services.start_operation(op, operator=operator, machine=machine)
    PlcStatus.objects.create(machine=machine, good_raw=0)
    made = 0
    errors: list[BaseException] = []

    def poll() -> None:
        nonlocal made
        try:
            version, raw = 0, 0
            for _ in range(60):
                written = store_poll_results(
                    [ReadWrite(machine.pk, version, raw + 3, None, 3, 0, timezone.now())], []
                )
                assert written == 1  # nobody else writes the raw values here
                version, raw, made = version + 1, raw + 3, made + 3
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def book() -> None:
        try:
            for _ in range(30):
                book_pending_counts()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=poll), threading.Thread(target=book)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    book_pending_counts()

    assert made == 180
    assert Operation.objects.get(pk=op.pk).quantity_good == 180
    assert PlcStatus.objects.get(machine=machine).pending_good == 0
