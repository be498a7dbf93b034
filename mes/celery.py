"""The Celery application. Tasks live in each app's ``tasks.py`` and stay thin; which queue
takes which task is in :mod:`mes.queues`."""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mes.settings")

app = Celery("mes")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect(dispatch_uid="mes.celery.logging")
def _django_logging(**kwargs) -> None:
    """Workers and beat log as the web processes do (JSON lines with the request id), rather
    than with Celery's own root handler."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
