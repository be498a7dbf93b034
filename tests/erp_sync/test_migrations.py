"""erp_sync 0004: the endpoint secrets a plant stored in plain text before are encrypted in
place when it upgrades, and decrypted again when it migrates back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from erp_sync.models import ErpEndpoint
from mes import crypto

BEFORE = [("erp_sync", "0003_alter_outboxevent_event_type")]
SECRET = "plain-secret-from-before-0123456789"


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _leaves():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def _stored() -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ErpEndpoint._meta.db_table} WHERE code = 'erp-old'")
        columns = [c[0] for c in cursor.description]
        return dict(zip(columns, cursor.fetchone(), strict=True))


@pytest.mark.django_db(transaction=True)
def test_plain_secrets_are_encrypted_on_upgrade_and_decrypted_going_back():
    old = _migrate(BEFORE)
    try:
        old.get_model("erp_sync", "ErpEndpoint").objects.create(
            code="erp-old", url="https://erp.example.com/events", secret=SECRET, event_types=[]
        )
    finally:
        _migrate(_leaves())

    stored = _stored()
    assert "secret" not in stored
    assert crypto.is_encrypted(stored["secret_encrypted"])
    assert SECRET not in stored["secret_encrypted"]
    assert ErpEndpoint.objects.get(code="erp-old").get_secret() == SECRET

    try:
        _migrate(BEFORE)
        assert _stored()["secret"] == SECRET
    finally:
        _migrate(_leaves())
        ErpEndpoint.objects.filter(code="erp-old").delete()
