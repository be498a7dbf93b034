"""Health for the plant's IT: ``/healthz`` (the process answers; touches nothing) and
``/readyz`` (the database answers, every migration is applied, the broker accepts a
connection; 503 naming what fails). Both unauthenticated and cheap: a load balancer or
orchestrator polls them every few seconds. They say what fails, never why in detail (no
host names, no error text)."""

from __future__ import annotations

import logging

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger("mes.health")
BROKER_TIMEOUT = 2.0


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


_migrated = False  # once every migration was applied, a process does not ask again


def _database() -> str | None:
    global _migrated
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    if _migrated:
        return None
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return "migrations"
    _migrated = True
    return None


def _broker() -> None:
    from mes.celery import app

    with app.connection_for_write(connect_timeout=BROKER_TIMEOUT) as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT)


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    try:
        pending = _database()
        checks["database"] = "ok"
        checks["migrations"] = "pending" if pending else "ok"
    except Exception:
        logger.exception("readiness: the database does not answer")
        checks["database"] = "failing"
        checks["migrations"] = "unknown"
    try:
        _broker()
        checks["broker"] = "ok"
    except Exception:
        logger.exception("readiness: the broker does not answer")
        checks["broker"] = "failing"
    failing = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "ok" if not failing else "unavailable", "checks": checks}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
