"""Delivering outbox events to ERP endpoints: at least once, in order per work order.

Only the head (oldest pending delivery) of each (endpoint, work order) queue is ever
attempted, so an event is never sent before an earlier one of the same order. A worker
claims the due heads with a lease (one short transaction): a worker killed mid-delivery
simply lets its lease expire and another retries; the ERP deduplicates by
``Idempotency-Key``. The HTTP calls happen outside any transaction, up to
``MES_OUTBOX_CONCURRENCY`` at once (heads of different orders, so the order per work order
holds), and the outcomes are written with one statement for those delivered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from mes import crypto, netguard

from .models import DeliveryStatus, OutboxDelivery
from .transport import delivery_client

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


def _claim(heads: list[int], now: datetime) -> list[OutboxDelivery]:
    """Take a lease on the heads no other worker holds; returns them with their endpoint
    and event."""
    lease = now + timedelta(seconds=settings.MES_OUTBOX_LEASE_SECONDS)
    free = Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    with transaction.atomic():
        claimed = list(
            OutboxDelivery.objects.select_for_update(skip_locked=True)
            .filter(free, pk__in=heads, status=DeliveryStatus.PENDING)
            .values_list("pk", flat=True)
        )
        OutboxDelivery.objects.filter(pk__in=claimed).update(locked_until=lease)
    return list(
        OutboxDelivery.objects.select_related("endpoint", "event")
        .filter(pk__in=claimed)
        .order_by("id")
    )


NO_ANSWER = "no HTTP answer (connection failed or timed out)"


def http_status(response: httpx.Response) -> str:
    """The status to store, e.g. "HTTP 500 Internal Server Error": the code and its
    standard phrase, nothing the server wrote (neither its body nor its reason phrase)."""
    return f"HTTP {response.status_code} {httpx.codes.get_reason_phrase(response.status_code)}"


def _post(client: httpx.Client, delivery: OutboxDelivery) -> str | None:
    """POST the event; None when delivered (2xx), else why not, in words that may be stored
    and shown: a refused target, a status line, or one message for every connection
    failure (refused, timed out, reset: telling those apart would make a port scanner of the
    MES). The details go to the log only."""
    endpoint, event = delivery.endpoint, delivery.event
    try:
        netguard.url_host(endpoint.url)  # the scheme; the transport checks the addresses
        secret = endpoint.get_secret()
    except (netguard.TargetNotAllowed, crypto.SecretUnreadable) as exc:
        return str(exc)
    body = encode_body(event.envelope())
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": str(event.event_id),
        "X-MES-Signature": sign(secret, body),
        "X-MES-Event-Type": event.event_type,
    }
    try:
        response = client.post(endpoint.url, content=body, headers=headers)
    except netguard.TargetNotAllowed as exc:
        return str(exc)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        log.info("outbox delivery to %s: %s: %s", endpoint.code, type(exc).__name__, exc)
        return NO_ANSWER
    except Exception:  # a bug or an httpx surprise must not end the pass
        log.exception("outbox delivery to %s failed unexpectedly", endpoint.code)
        return "delivery failed (see the worker's log)"
    if 200 <= response.status_code < 300:
        return None
    return http_status(response)


LEASE_MARGIN_SECONDS = 2  # for the claim and the record around a wave's calls


def _record_failure(delivery: OutboxDelivery, error: str, report: PassReport) -> None:
    now = timezone.now()
    attempts = delivery.attempts + 1
    updates: dict = {
        "attempts": attempts,
        "locked_until": None,
        "last_error": error,
        "next_attempt_at": now + backoff(attempts),
    }
    age = (now - delivery.created_at).total_seconds()
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


def _record_delivered(deliveries: list[OutboxDelivery], report: PassReport) -> None:
    OutboxDelivery.objects.filter(
        pk__in=[d.pk for d in deliveries], status=DeliveryStatus.PENDING
    ).update(
        status=DeliveryStatus.DELIVERED,
        delivered_at=timezone.now(),
        last_error="",
        attempts=F("attempts") + 1,
        locked_until=None,
    )
    report.delivered += len(deliveries)


def deliver_pending(
    *, budget_seconds: float | None = None, batch: int = 500, client: httpx.Client | None = None
) -> PassReport:
    """Deliver due heads until none is left or the time budget is spent.

    The due heads are claimed in waves of ``MES_OUTBOX_CONCURRENCY`` x k, where k is how many
    calls of a whole ``MES_OUTBOX_TIMEOUT`` each fit in one lease (at least one): a wave's
    calls end before its lease even when every one of them times out, so no other worker
    claims a head that is still being sent."""
    budget = settings.MES_OUTBOX_PASS_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    report = PassReport()
    own_client = client is None
    client = client or delivery_client(timeout=settings.MES_OUTBOX_TIMEOUT)
    concurrency = settings.MES_OUTBOX_CONCURRENCY
    calls_in_a_lease = int(
        (settings.MES_OUTBOX_LEASE_SECONDS - LEASE_MARGIN_SECONDS) // settings.MES_OUTBOX_TIMEOUT
    )
    wave = concurrency * max(1, calls_in_a_lease)
    calls = ThreadPoolExecutor(max_workers=concurrency)
    try:
        progressed = True
        while progressed and time.monotonic() < deadline:
            heads = _due_heads(timezone.now(), batch)
            progressed = False
            for start in range(0, len(heads), wave):
                if time.monotonic() >= deadline:
                    break
                deliveries = _claim(heads[start : start + wave], timezone.now())
                report.skipped_locked += len(heads[start : start + wave]) - len(deliveries)
                errors = list(calls.map(partial(_post, client), deliveries))
                delivered = [d for d, error in zip(deliveries, errors, strict=True) if not error]
                _record_delivered(delivered, report)
                for delivery, error in zip(deliveries, errors, strict=True):
                    if error is not None:
                        _record_failure(delivery, error, report)
                progressed = progressed or bool(delivered)
            # Nothing delivered: everything due failed or was taken; wait for the next pass.
    finally:
        calls.shutdown(wait=True)
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
