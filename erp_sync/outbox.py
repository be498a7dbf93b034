"""Writing events to the outbox. Called by the core services inside their transaction."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from .models import ErpEndpoint, OutboxDelivery, OutboxEvent


def record_event(
    *, event_type: str, aggregate_key: str, data: dict, occurred_at: datetime
) -> OutboxEvent:
    if not transaction.get_connection().in_atomic_block:
        # An event written outside the change's transaction could survive a rolled-back
        # change, or be lost while the change commits: refuse instead.
        raise RuntimeError("Outbox events must be written inside the change's transaction.")
    event = OutboxEvent.objects.create(
        event_type=event_type, aggregate_key=aggregate_key, payload=data, occurred_at=occurred_at
    )
    # One delivery per subscribed endpoint, in the same transaction: nothing is lost when the
    # ERP, the broker or a worker is down.
    OutboxDelivery.objects.bulk_create(
        [
            OutboxDelivery(
                event=event,
                endpoint=endpoint,
                endpoint_code=endpoint.code,
                aggregate_key=aggregate_key,
            )
            for endpoint in ErpEndpoint.objects.filter(active=True)
            if endpoint.wants(event_type)
        ]
    )
    return event
