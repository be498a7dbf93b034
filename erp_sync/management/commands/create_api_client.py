"""Create an API client; its token is printed alone on the last line (shown once)."""

from django.core.management.base import BaseCommand, CommandError

from erp_sync.auth import create_api_client
from erp_sync.models import Scope
from mes.errors import DomainError


class Command(BaseCommand):
    help = "Create an API client for an ERP or integrator and print its token (once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scope", required=True, choices=Scope.values)

    def handle(self, *args, name: str, scope: str, **options) -> None:
        try:
            client, token = create_api_client(name=name, scope=scope)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Created API client {client.name!r} with scope {client.scope}. "
            "Store the token now; it is not shown again:"
        )
        self.stdout.write(token)
