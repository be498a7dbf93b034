"""gunicorn's configuration for the web processes (``gunicorn -c python:mes.gunicorn``).

Metrics: each worker writes its values into ``PROMETHEUS_MULTIPROC_DIR`` (by default
``$MES_VAR_DIR/metrics``, set here before the workers start) and ``/metrics`` sums them.
The folder's metric files are removed when gunicorn starts (values of an earlier run would
be counted again) and a worker that exits is marked dead (its gauges dropped).

Logs: gunicorn's own lines (start, workers, access) are JSON lines too unless
``MES_LOG_FORMAT=plain``."""

from __future__ import annotations

import os
from pathlib import Path

bind = os.environ.get("MES_BIND", "0.0.0.0:" + os.environ.get("PORT", "8000"))
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
accesslog = "-"

_var = Path(os.environ.get("MES_VAR_DIR", Path(__file__).resolve().parent.parent / "var"))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_var / "metrics"))

if os.environ.get("MES_LOG_FORMAT", "json").strip().lower() != "plain":
    from mes.logformat import json_formatter

    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": json_formatter()},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


def on_starting(server) -> None:
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.glob("*.db"):  # prometheus-client's files only, nothing else
        entry.unlink()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
