"""The downtime reason tree now belongs to the shop floor app (shopfloor 0003). State only:
the rows stay where they are. The content type follows the model, so permissions granted
on it and admin history keep pointing at it."""

from django.db import migrations


def move_content_type(apps, schema_editor, *, source="terminal", target="shopfloor"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if ContentType.objects.filter(app_label=target, model="downtimereason").exists():
        return
    ContentType.objects.filter(app_label=source, model="downtimereason").update(app_label=target)


def move_content_type_back(apps, schema_editor):
    move_content_type(apps, schema_editor, source="shopfloor", target="terminal")


class Migration(migrations.Migration):
    dependencies = [
        ("terminal", "0002_default_reasons"),
        ("shopfloor", "0003_downtime_reason_moves_here"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="DowntimeReason")],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
