"""Assertions and bodies shared by the API contract tests."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from erp_sync.models import EventType, OutboxEvent

API = "/api/v1"

WORK_ORDER_KEYS = {
    "number",
    "product",
    "routing",
    "quantity",
    "due_date",
    "priority",
    "status",
    "quantity_good",
    "quantity_scrap",
    "actual_start",
    "actual_end",
    "projected_end",
    "at_risk",
    "current_operation",
    "operations",
    "updated_at",
}
OPERATION_KEYS = {
    "sequence",
    "name",
    "work_center",
    "machine",
    "status",
    "quantity_good",
    "quantity_scrap",
    "planned_start",
    "planned_end",
    "actual_start",
    "actual_end",
}
CURRENT_OPERATION_KEYS = {"sequence", "name", "work_center", "machine", "status"}


def assert_error(response, status: int, code: str, fields: set[str] | None = None) -> dict:
    """The contract's error body, exactly: {"code", "detail", "errors"}."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"code", "detail", "errors"}, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"].strip(), body
    assert isinstance(body["errors"], dict), body
    for name, messages in body["errors"].items():
        assert isinstance(name, str), body
        assert isinstance(messages, list) and messages, body
        assert all(isinstance(m, str) and m for m in messages), body
    if fields is not None:
        assert fields <= set(body["errors"]), body
    return body


def assert_etag(response) -> str:
    """An ETag header that is a quoted (strong) entity tag."""
    etag = response["ETag"]
    assert re.fullmatch(r'"[\x21\x23-\x7e]+"', etag), etag
    return etag


def iso(value) -> str:
    return value.isoformat()


def due(days: int = 7):
    return timezone.now().replace(microsecond=0) + timedelta(days=days)


def wo_body(product_code: str, /, **overrides) -> dict:
    body = {"product": product_code, "quantity": 100, "due_date": iso(due())}
    body.update(overrides)
    return body


def wo_url(number: str, action: str | None = None) -> str:
    return f"{API}/work-orders/{number}/" + (f"{action}/" if action else "")


def updated_events(number: str | None = None) -> int:
    events = OutboxEvent.objects.filter(event_type=EventType.WORK_ORDER_UPDATED)
    if number is not None:
        events = events.filter(aggregate_key=number)
    return events.count()


def walk(client, url: str, *, limit: int = 1000) -> list[dict]:
    """Follow ``next`` links from ``url``; every page's results, in order."""
    results: list[dict] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content[:500]
        body = response.json()
        assert set(body) == {"results", "next"}, body.keys()
        results.extend(body["results"])
        url = body["next"]
        pages += 1
        assert pages < limit, "the walk does not end"
    return results
