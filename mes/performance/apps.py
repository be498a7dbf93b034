from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PerformanceConfig(AppConfig):
    name = "mes.performance"
    label = "performance"
    verbose_name = _("Performance")

    def ready(self) -> None:
        from . import signals  # noqa: F401 (cache invalidation only)
