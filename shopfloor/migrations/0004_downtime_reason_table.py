"""The downtime reason table takes the shop floor app's name (its rows, keys and the
references of downtime records stay as they are)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("shopfloor", "0003_downtime_reason_moves_here"),
        ("terminal", "0003_downtime_reason_moves_to_shopfloor"),
    ]

    operations = [
        migrations.AlterModelTable(name="downtimereason", table=None),
    ]
