"""The scrap reasons the terminal offered as fixed strings until now, as rows, and the one
a quality disposition books its scrap under."""

from django.db import migrations

REASONS = [
    ("DIM", "Dimension out of tolerance", "process"),
    ("SURF", "Surface defect", "process"),
    ("MAT", "Material defect", "material"),
    ("SETUP", "Setup part", "setup"),
    ("QUALITY", "Quality nonconformance", "process"),
    ("OTHER", "Other", "other"),
]


def create(apps, schema_editor):
    ScrapReason = apps.get_model("quality", "ScrapReason")
    for position, (code, text, category) in enumerate(REASONS):
        ScrapReason.objects.get_or_create(
            code=code, defaults={"text": text, "category": category, "position": position}
        )


class Migration(migrations.Migration):
    dependencies = [("quality", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
