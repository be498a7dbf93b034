"""A starting downtime reason tree; plants change it in the admin."""

from django.db import migrations

TREE = [
    (
        "MECH",
        "Mechanical",
        False,
        [("MECH-SPINDLE", "Spindle"), ("MECH-HYD", "Hydraulics"), ("MECH-TOOL", "Tool breakage")],
    ),
    (
        "ELEC",
        "Electrical",
        False,
        [
            ("ELEC-DRIVE", "Drive fault"),
            ("ELEC-SENSOR", "Sensor"),
            ("ELEC-PLC", "Controller / PLC"),
        ],
    ),
    (
        "MAT",
        "Material",
        False,
        [("MAT-MISSING", "Material missing"), ("MAT-WRONG", "Wrong material")],
    ),
    ("QUAL", "Quality", False, [("QUAL-HOLD", "Inspection hold"), ("QUAL-ADJUST", "Adjustment")]),
    (
        "PLAN",
        "Planned stop",
        True,
        [
            ("PLAN-SETUP", "Setup / changeover"),
            ("PLAN-BREAK", "Break"),
            ("PLAN-MAINT", "Planned maintenance"),
            ("PLAN-CLEAN", "Cleaning"),
        ],
    ),
]


def create(apps, schema_editor):
    create_tree(apps.get_model("terminal", "DowntimeReason"))


def create_tree(Reason):
    """The tree's rows, with ``Reason`` the downtime reason model (historical or current: the
    browser tests put the tree back with it after emptying the tables)."""
    for position, (code, name, planned, children) in enumerate(TREE):
        parent, _ = Reason.objects.get_or_create(
            code=code, defaults={"name": name, "planned": planned, "position": position}
        )
        for child_position, (child_code, child_name) in enumerate(children):
            Reason.objects.get_or_create(
                code=child_code,
                defaults={
                    "name": child_name,
                    "parent": parent,
                    "planned": planned,
                    "position": child_position,
                },
            )


class Migration(migrations.Migration):
    dependencies = [("terminal", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
