"""The Celery application. Tasks live in each app's ``tasks.py`` and stay thin; which queue
takes which task is in :mod:`mes.queues`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mes.settings")

app = Celery("mes")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
