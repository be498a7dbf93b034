from django.apps import AppConfig


class ErpSyncConfig(AppConfig):
    name = "erp_sync"
    verbose_name = "ERP integration"

    def ready(self) -> None:
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extension)
