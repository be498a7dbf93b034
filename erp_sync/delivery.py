"""Delivering outbox events to ERP endpoints: at least once, in order per work order.

Only the head (oldest pending delivery) of each (endpoint, work order) queue is ever
attempted, so an event is never sent before an earlier one of the same order. A worker
claims a head with a lease (a conditional UPDATE, no long transaction): a worker killed
mid-delivery simply lets its lease expire and another retries; the ERP deduplicates by
``Idempotency-Key``. The HTTP call happens outside any transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db.models import Min, Q
from django.utils import timezone

from .models import DeliveryStatus, OutboxDelivery

log = logging.getLogger(__name__)


@dataclass
class PassReport:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    skipped_locked: int = 0
    errors: list[str] = field(default_factory=list)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode_body(envelope: dict) -> bytes:
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def backoff(attempts: int) -> timedelta:
    """Capped exponential: 2 s, 4 s, 8 s ... up to MES_OUTBOX_BACKOFF_CAP seconds."""
    base, cap = settings.MES_OUTBOX_BACKOFF_BASE, settings.MES_OUTBOX_BACKOFF_CAP
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def _due_heads(now: datetime, limit: int) -> list[int]:
    heads = (
        OutboxDelivery.objects.filter(status=DeliveryStatus.PENDING, endpoint__isnull=False)
        .values("endpoint_id", "aggregate_key")
        .annotate(head=Min("id"))
        .values_list("head", flat=True)
    )
    return list(
        OutboxDelivery.objects.filter(pk__in=heads, next_attempt_at__lte=now)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )


def _claim(pk: int, now: datetime) -> bool:
    lease = now + timedelta(seconds=settings.MES_OUTBOX_LEASE_SECONDS)
    return bool(
        OutboxDelivery.objects.filter(pk=pk, status=DeliveryStatus.PENDING)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .update(locked_until=lease)
    )


def _post(client: httpx.Client, delivery: OutboxDelivery) -> str | None:
    """POST the event; None when delivered (2xx), else why not."""
    endpoint, event = delivery.endpoint, delivery.event
    body = encode_body(event.envelope())
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": str(event.event_id),
        "X-MES-Signature": sign(endpoint.secret, body),
        "X-MES-Event-Type": event.event_type,
    }
    try:
        response = client.post(endpoint.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _record(delivery: OutboxDelivery, error: str | None, report: PassReport) -> None:
    now = timezone.now()
    attempts = delivery.attempts + 1
    updates: dict = {"attempts": attempts, "locked_until": None}
    if error is None:
        updates.update(status=DeliveryStatus.DELIVERED, delivered_at=now, last_error="")
        report.delivered += 1
    else:
        age = (now - delivery.created_at).total_seconds()
        updates.update(last_error=error, next_attempt_at=now + backoff(attempts))
        if age > settings.MES_OUTBOX_MAX_AGE:
            updates["status"] = DeliveryStatus.DEAD
            report.dead += 1
        else:
            report.failed += 1
        report.errors.append(f"{delivery.endpoint_code} {delivery.event.event_id}: {error}")
        log.warning(
            "outbox delivery %s to %s failed (attempt %s): %s",
            delivery.event.event_id,
            delivery.endpoint_code,
            attempts,
            error,
        )
    # Only the claimant writes the outcome (the lease may have been lost to a slow call).
    OutboxDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(**updates)


def deliver_pending(
    *, budget_seconds: float | None = None, batch: int = 200, client: httpx.Client | None = None
) -> PassReport:
    """Deliver due heads until none is left or the time budget is spent."""
    budget = settings.MES_OUTBOX_PASS_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    report = PassReport()
    own_client = client is None
    client = client or httpx.Client(timeout=settings.MES_OUTBOX_TIMEOUT, follow_redirects=False)
    try:
        while time.monotonic() < deadline:
            now = timezone.now()
            heads = _due_heads(now, batch)
            if not heads:
                break
            progressed = False
            for pk in heads:
                if time.monotonic() >= deadline:
                    break
                if not _claim(pk, now):
                    report.skipped_locked += 1
                    continue
                delivery = OutboxDelivery.objects.select_related("endpoint", "event").get(pk=pk)
                error = _post(client, delivery)
                _record(delivery, error, report)
                progressed = progressed or error is None
            if not progressed:
                break  # everything due failed or was taken: wait for the next pass
    finally:
        if own_client:
            client.close()
    return report


def delivery_lag() -> dict:
    """For supervisors: how far behind the ERP is."""
    oldest = OutboxDelivery.objects.filter(status=DeliveryStatus.PENDING).order_by("id").first()
    now = timezone.now()
    return {
        "pending": OutboxDelivery.objects.filter(status=DeliveryStatus.PENDING).count(),
        "dead": OutboxDelivery.objects.filter(status=DeliveryStatus.DEAD).count(),
        "oldest_age_seconds": (now - oldest.created_at).total_seconds() if oldest else 0,
    }
