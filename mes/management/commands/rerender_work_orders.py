"""Refresh the stored JSON renderings of work orders (see mes.selectors.rerender_work_orders).
Needed after importing orders with SQL or renaming a product, work center or machine code."""

from django.core.management.base import BaseCommand

from mes.models import WorkOrder
from mes.selectors import rerender_work_orders


class Command(BaseCommand):
    help = "Re-render the stored API representation of work orders."

    def add_arguments(self, parser):
        parser.add_argument(
            "--only-missing", action="store_true", help="Only rows that have no rendering yet."
        )

    def handle(self, *args, only_missing: bool, **options) -> None:
        queryset = WorkOrder.objects.all()
        if only_missing:
            queryset = queryset.filter(rendered="")
        count = rerender_work_orders(queryset)
        self.stdout.write(f"Re-rendered {count} work orders.")
