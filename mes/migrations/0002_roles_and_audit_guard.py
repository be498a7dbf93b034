"""Create the role groups and a database trigger that refuses updates of audit records."""

from django.db import migrations

ROLES = ["operator", "supervisor", "planner", "admin"]

TRIGGERS = {
    "postgresql": (
        """
        CREATE OR REPLACE FUNCTION mes_audit_append_only() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'audit records are append-only'; END;
        $$ LANGUAGE plpgsql;
        CREATE TRIGGER mes_auditrecord_no_update BEFORE UPDATE ON mes_auditrecord
        FOR EACH ROW EXECUTE FUNCTION mes_audit_append_only();
        """,
        """
        DROP TRIGGER IF EXISTS mes_auditrecord_no_update ON mes_auditrecord;
        DROP FUNCTION IF EXISTS mes_audit_append_only();
        """,
    ),
    "sqlite": (
        """
        CREATE TRIGGER mes_auditrecord_no_update BEFORE UPDATE ON mes_auditrecord
        BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
        """,
        "DROP TRIGGER IF EXISTS mes_auditrecord_no_update;",
    ),
}


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def add_trigger(apps, schema_editor):
    sql = TRIGGERS.get(schema_editor.connection.vendor)
    if sql:
        schema_editor.execute(sql[0])


def drop_trigger(apps, schema_editor):
    sql = TRIGGERS.get(schema_editor.connection.vendor)
    if sql:
        schema_editor.execute(sql[1])


class Migration(migrations.Migration):
    dependencies = [
        ("mes", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
        migrations.RunPython(add_trigger, drop_trigger),
    ]
