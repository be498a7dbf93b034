"""Structured logs: JSON lines (python-json-logger) carrying the request id of the request
or Celery task they were written for.

A request takes its id from a well-formed ``X-Request-ID`` header (a proxy's) or gets a new
one, and answers with it. Tasks the request sends carry it in a message header, so a
worker's log lines for that work share the id; a task started by beat gets ``task-<id>``."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
TASK_HEADER = "mes_request_id"
WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{8,64}")

request_id: ContextVar[str] = ContextVar("mes_request_id", default="")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sent = request.headers.get(HEADER, "")
        rid = sent if WELL_FORMED.fullmatch(sent) else uuid.uuid4().hex
        request.request_id = rid
        token = request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response[HEADER] = rid
        return response


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (empty outside requests and tasks), for
    handlers configured before this module was imported."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id.get()
        return True


def _install_record_factory() -> None:
    """Every record is born with the request id, whichever handler (or test) reads it."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "mes_request_id", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = request_id.get()
        return record

    factory.mes_request_id = True
    logging.setLogRecordFactory(factory)


_install_record_factory()


@before_task_publish.connect(dispatch_uid="mes.logs.publish")
def _carry_request_id(headers=None, **kwargs) -> None:
    rid = request_id.get()
    if rid and headers is not None:
        headers[TASK_HEADER] = rid


_task_tokens: dict[str, object] = {}


@task_prerun.connect(dispatch_uid="mes.logs.prerun")
def _task_started(task_id=None, task=None, **kwargs) -> None:
    rid = getattr(task.request, TASK_HEADER, None) if task is not None else None
    if not rid:
        headers = getattr(task.request, "headers", None) or {} if task is not None else {}
        rid = headers.get(TASK_HEADER) if isinstance(headers, dict) else None
    _task_tokens[task_id] = request_id.set(rid or f"task-{task_id}")


@task_postrun.connect(dispatch_uid="mes.logs.postrun")
def _task_finished(task_id=None, **kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        request_id.reset(token)
