"""The admin: master data editable, state only through services, audit read-only."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from mes import services
from mes.accounts import operator_by_badge
from mes.choices import WorkOrderStatus
from mes.models import AuditRecord, Routing, WorkOrder

from ..factories import RoutingFactory, make_routing, make_work_order

ADMIN_MODELS = [
    "erp_sync.outboxevent",
    "site",
    "area",
    "workcenter",
    "machine",
    "product",
    "routing",
    "workorder",
    "operation",
    "operatorprofile",
    "auditrecord",
]


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_changelists_load_with_search(admin_client, work_order, model):
    app, _, name = model.rpartition(".")
    url = reverse(f"admin:{app or 'mes'}_{name}_changelist")
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(url, {"q": "x"}).status_code == 200


def test_audit_records_are_read_only_in_admin(admin_client, work_order):
    record = AuditRecord.objects.filter(work_order=work_order).first()
    assert admin_client.get(reverse("admin:mes_auditrecord_add")).status_code == 403
    change = admin_client.post(
        reverse("admin:mes_auditrecord_change", args=[record.pk]), {"reason": "tampered"}
    )
    assert change.status_code == 403
    delete = admin_client.post(
        reverse("admin:mes_auditrecord_delete", args=[record.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    record.refresh_from_db()
    assert record.reason == ""


def _form(rt, **extra):
    due = timezone.localtime(timezone.now() + timedelta(days=2))
    data = {
        "number": "WO-ADM-1",
        "product": rt.product.pk,
        "routing": rt.pk,
        "quantity": "25",
        "due_date_0": due.strftime("%Y-%m-%d"),
        "due_date_1": due.strftime("%H:%M:%S"),
        "priority": "normal",
        "notes": "",
        "operations-TOTAL_FORMS": "0",
        "operations-INITIAL_FORMS": "0",
    }
    data.update(extra)
    return data


def test_admin_creates_work_order_through_the_service(admin_client, admin_user):
    routing = make_routing(2)
    response = admin_client.post(reverse("admin:mes_workorder_add"), _form(routing, release="on"))
    assert response.status_code == 302, response.content.decode()[:2000]
    wo = WorkOrder.objects.get(number="WO-ADM-1")
    assert wo.status == WorkOrderStatus.RELEASED
    assert wo.operations.count() == 2
    actions = list(wo.audit_records.values_list("action", "actor"))
    assert ("create", admin_user.pk) in actions and ("release", admin_user.pk) in actions


def test_admin_refuses_routing_of_another_product_and_writes_nothing(admin_client):
    routing = make_routing(1)
    foreign = RoutingFactory()
    response = admin_client.post(
        reverse("admin:mes_workorder_add"), _form(routing, routing=foreign.pk), follow=True
    )
    assert "does not make product" in response.content.decode()
    assert not WorkOrder.objects.filter(number="WO-ADM-1").exists()


def test_admin_edit_below_produced_is_refused(admin_client, supervisor, operator):
    wo = make_work_order(actor=supervisor, steps=1, quantity=50)
    op = services.start_operation(wo.operations.get(), operator=operator)
    services.report_quantity(op, actor=operator, good=30)
    wo.refresh_from_db()
    data = _form(wo.routing, number=wo.number, quantity="10")
    response = admin_client.post(
        reverse("admin:mes_workorder_change", args=[wo.pk]), data, follow=True
    )
    assert "cannot go below" in response.content.decode()
    wo.refresh_from_db()
    assert wo.quantity == 50


@pytest.mark.parametrize(
    "action,reason,expected",
    [
        ("hold", "Material missing", WorkOrderStatus.ON_HOLD),
        ("hold", "", WorkOrderStatus.RELEASED),
        ("cancel", "Customer cancelled", WorkOrderStatus.CANCELLED),
        ("cancel", "", WorkOrderStatus.RELEASED),
    ],
)
def test_admin_actions_call_services(admin_client, work_order, action, reason, expected):
    response = admin_client.post(
        reverse("admin:mes_workorder_changelist"),
        {"action": action, "_selected_action": [work_order.pk], "reason": reason},
        follow=True,
    )
    assert response.status_code == 200
    work_order.refresh_from_db()
    assert work_order.status == expected
    if not reason:
        assert "Give a reason" in response.content.decode()
    else:
        assert work_order.audit_records.filter(action=action, reason=reason).exists()


def test_admin_release_action_reports_refusals(admin_client, work_order):
    response = admin_client.post(
        reverse("admin:mes_workorder_changelist"),
        {"action": "release", "_selected_action": [work_order.pk]},
        follow=True,
    )
    assert "cannot be released" in response.content.decode()


def test_activating_a_routing_deactivates_the_other(admin_client):
    old = RoutingFactory(active=True)
    new = RoutingFactory(product=old.product, version=2, active=False)
    admin_client.post(
        reverse("admin:mes_routing_changelist"),
        {"action": "make_active", "_selected_action": [new.pk]},
    )
    assert list(Routing.objects.filter(product=old.product, active=True)) == [new]


def test_operator_pin_is_stored_hashed_from_admin(admin_client, operator):
    profile = operator.operator_profile
    response = admin_client.post(
        reverse("admin:mes_operatorprofile_change", args=[profile.pk]),
        {"user": operator.pk, "badge": "1001", "pin": "9876"},
    )
    assert response.status_code == 302
    profile.refresh_from_db()
    assert "9876" not in profile.pin_hash
    assert operator_by_badge("1001", "9876") == operator
    assert operator_by_badge("1001", "1234") is None
    bad = admin_client.post(
        reverse("admin:mes_operatorprofile_change", args=[profile.pk]),
        {"user": operator.pk, "badge": "1001", "pin": "12"},
    )
    assert bad.status_code == 200 and "4 to 8 digits" in bad.content.decode()
