from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MesConfig(AppConfig):
    name = "mes"
    verbose_name = "Production"

    def ready(self) -> None:
        from . import logs, roles, security  # noqa: F401 - logs and security connect signals

        post_migrate.connect(roles._after_migrate, dispatch_uid="mes.roles.sync")
