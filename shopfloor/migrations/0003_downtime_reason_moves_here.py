"""The downtime reason tree moves from the terminal app to the shop floor app, beside the
downtime records (``shopfloor.downtime``). State only: the table stays as it is here and is
renamed in 0004, once the terminal app has let go of the model (terminal 0003)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shopfloor", "0002_downtime_reason_choice"),
        ("terminal", "0002_default_reasons"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="DowntimeReason",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("code", models.CharField(max_length=32, unique=True, verbose_name="code")),
                        ("name", models.CharField(max_length=100, verbose_name="name")),
                        ("planned", models.BooleanField(default=False, verbose_name="planned")),
                        ("active", models.BooleanField(default=True, verbose_name="active")),
                        (
                            "position",
                            models.PositiveIntegerField(default=0, verbose_name="position"),
                        ),
                        (
                            "parent",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="children",
                                to="shopfloor.downtimereason",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "downtime reason",
                        "ordering": ["position", "name"],
                        "db_table": "terminal_downtimereason",
                    },
                ),
                migrations.AlterField(
                    model_name="downtimerecord",
                    name="reason_choice",
                    field=models.ForeignKey(
                        blank=True,
                        limit_choices_to={"parent__isnull": False},
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="downtimes",
                        to="shopfloor.downtimereason",
                        verbose_name="reason from the tree",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
