"""Recompute the performance rollups (OEE) of a range from the event log."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from mes.models import Machine
from mes.performance import rollups


class Command(BaseCommand):
    help = (
        "Recompute the OEE rollups of a range from the machines' state events and the "
        "production confirmations: after a shift calendar was changed for the past, or to "
        "fill history loaded in bulk. Machines whose states are not all in the event log "
        "(set by a script rather than a PLC or a declaration) lose what only the live path saw."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", help="ISO date and time (default: 7 days ago)")
        parser.add_argument("--until", help="ISO date and time (default: now)")
        parser.add_argument("--machine", action="append", default=[], help="a machine code")

    def handle(self, *args, since=None, until=None, machine=(), **options) -> None:
        now = timezone.now()
        start = self._moment(since, "--since") if since else now - timedelta(days=7)
        end = self._moment(until, "--until") if until else now
        if end <= start:
            raise CommandError("--until must be after --since.")
        ids = None
        if machine:
            found = dict(Machine.objects.filter(code__in=machine).values_list("code", "pk"))
            unknown = sorted(set(machine) - set(found))
            if unknown:
                raise CommandError(f"Unknown machine(s): {', '.join(unknown)}.")
            ids = list(found.values())
        rows = rollups.rebuild(start=start, end=end, machine_ids=ids)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rebuilt {rows} machine quarter hours from {start:%Y-%m-%d %H:%M} "
                f"to {end:%Y-%m-%d %H:%M} UTC."
            )
        )

    @staticmethod
    def _moment(raw: str, flag: str):
        value = parse_datetime(raw)
        if value is None:
            raise CommandError(f"{flag}: {raw!r} is not an ISO date and time.")
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value
