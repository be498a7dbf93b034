"""gunicorn's configuration for the web processes (``gunicorn -c python:mes.gunicorn``).

With ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes its metrics into that folder and
``/metrics`` sums them: the folder is emptied when gunicorn starts (values of an earlier
run would be counted again) and a worker that exits is marked dead (its gauges dropped)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

bind = os.environ.get("MES_BIND", "0.0.0.0:" + os.environ.get("PORT", "8000"))
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
accesslog = "-"


def on_starting(server) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        path = Path(folder)
        if path.exists():
            for entry in path.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        path.mkdir(parents=True, exist_ok=True)


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
