"""The downtime reason tree moved from the terminal app to the shop floor app (shopfloor
0003/0004, terminal 0003): a plant's database upgraded across that keeps its tree, the
stops that reference it and the permissions granted on it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from shopfloor.models import DowntimeReason, DowntimeRecord
from tests.factories import MachineFactory

BEFORE = [("shopfloor", "0002_downtime_reason_choice"), ("terminal", "0002_default_reasons")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _leaves():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_an_upgraded_database_keeps_its_reasons_their_stops_and_permissions():
    machine = MachineFactory(code="PRESS-1")
    old = _migrate(BEFORE)
    try:
        OldReason = old.get_model("terminal", "DowntimeReason")
        assert OldReason._meta.db_table == "terminal_downtimereason"
        # Own rows: an earlier transactional test may have emptied the migration's tree.
        category = OldReason.objects.create(code="T-MECH", name="Mechanical")
        hydraulics = OldReason.objects.create(code="T-HYD", name="Hydraulics", parent=category)
        OldReason.objects.create(code="T-OWN", name="Plant's own", parent=category)
        old.get_model("shopfloor", "DowntimeRecord").objects.create(
            machine_id=machine.pk,
            cause="down",
            started_at=timezone.now(),
            reason="Mechanical > Hydraulics (unplanned)",
            reason_choice_id=hydraulics.pk,
        )
        # What an administrator granted on the model before the move (going back, its
        # content type went back to the terminal app).
        old_type = ContentType.objects.get(app_label="terminal", model="downtimereason")
        supervisors, _ = Group.objects.get_or_create(name="supervisor")
        supervisors.permissions.add(
            Permission.objects.get(content_type=old_type, codename="change_downtimereason")
        )
    finally:
        _migrate(_leaves())
        ContentType.objects.clear_cache()

    assert DowntimeReason._meta.db_table == "shopfloor_downtimereason"
    record = DowntimeRecord.objects.select_related("reason_choice__parent").get()
    assert record.reason_choice.path == "Mechanical > Hydraulics"
    assert DowntimeReason.objects.get(code="T-OWN").parent.code == "T-MECH"
    assert ContentType.objects.get_for_model(DowntimeReason).pk == old_type.pk
    assert not ContentType.objects.filter(app_label="terminal", model="downtimereason").exists()
    assert supervisors.permissions.filter(
        content_type__app_label="shopfloor", codename="change_downtimereason"
    ).exists()
