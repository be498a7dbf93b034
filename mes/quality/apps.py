from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "mes.quality"
    label = "quality"
    verbose_name = "Quality"
