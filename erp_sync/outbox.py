"""Writing events to the outbox. Called by the core services inside their transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from mes.services.bulk import insert_rows

from .models import ErpEndpoint, OutboxDelivery, OutboxEvent


@dataclass(frozen=True)
class NewEvent:
    event_type: str
    aggregate_key: str
    data: dict
    occurred_at: datetime


def record_event(
    *, event_type: str, aggregate_key: str, data: dict, occurred_at: datetime
) -> OutboxEvent:
    return record_events([NewEvent(event_type, aggregate_key, data, occurred_at)])[0]


def record_events(events: Sequence[NewEvent]) -> list[OutboxEvent]:
    """Append events in the given order (one multi-row insert), each with one delivery per
    subscribed endpoint."""
    if not transaction.get_connection().in_atomic_block:
        # An event written outside the change's transaction could survive a rolled-back
        # change, or be lost while the change commits: refuse instead.
        raise RuntimeError("Outbox events must be written inside the change's transaction.")
    if not events:
        return []
    rows = [
        OutboxEvent(
            event_type=e.event_type,
            aggregate_key=e.aggregate_key,
            payload=e.data,
            occurred_at=e.occurred_at,
        )
        for e in events
    ]
    insert_rows(OutboxEvent, rows)
    # One delivery per subscribed endpoint, in the same transaction: nothing is lost when the
    # ERP, the broker or a worker is down.
    endpoints = list(ErpEndpoint.objects.filter(active=True))
    OutboxDelivery.objects.bulk_create(
        [
            OutboxDelivery(
                event=event,
                endpoint=endpoint,
                endpoint_code=endpoint.code,
                aggregate_key=event.aggregate_key,
            )
            for event in rows
            for endpoint in endpoints
            if endpoint.wants(event.event_type)
        ]
    )
    return rows
