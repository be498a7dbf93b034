"""The demo plant: believable, complete, idempotent."""

import io

import pytest
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from mes.accounts import operator_by_badge
from mes.choices import WorkOrderStatus
from mes.models import Area, Machine, Product, Routing, Site, WorkCenter, WorkOrder

SNAPSHOT_APPS = ["mes", "erp_sync", "auth"]


def _snapshot() -> str:
    out = io.StringIO()
    call_command("dumpdata", *SNAPSHOT_APPS, stdout=out, indent=None)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_builds_the_plant_and_is_idempotent():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    first = _snapshot()
    assert "badge 1001, PIN 1234" in out.getvalue()
    assert "admin       / mes-admin-2026" in out.getvalue()

    assert (
        Site.objects.count(),
        Area.objects.count(),
        WorkCenter.objects.count(),
        Machine.objects.count(),
        Product.objects.count(),
    ) == (1, 2, 4, 8, 6)
    for routing in Routing.objects.all():
        assert 2 <= routing.steps.count() <= 4 and routing.active
    statuses = dict(WorkOrder.objects.values_list("status").annotate(n=Count("id")).order_by())
    assert sum(statuses.values()) == 40
    assert set(statuses) == set(WorkOrderStatus.values), statuses
    open_late = WorkOrder.objects.exclude(
        status__in=[WorkOrderStatus.COMPLETED, WorkOrderStatus.CANCELLED]
    ).filter(due_date__lt=timezone.now())
    assert open_late.count() >= 3
    # History never lies in the future.
    assert not WorkOrder.objects.filter(actual_start__gt=timezone.now()).exists()
    assert operator_by_badge("1001", "1234").get_full_name() == "Ana Lopez"
    assert operator_by_badge("1001", "0000") is None
    assert {m.state for m in Machine.objects.all()} >= {"running", "idle", "down"}

    call_command("seed_demo", stdout=io.StringIO())
    assert _snapshot() == first
