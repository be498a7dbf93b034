"""Writes of the ERP side: endpoints, machine connections from the API, and replaying
dead letters. Delivery itself lives in :mod:`erp_sync.delivery`."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from mes.errors import ValidationFailed
from mes.models import Machine

from .models import DeliveryStatus, ErpEndpoint, OutboxDelivery


def upsert_endpoint(
    code: str, *, url: str, secret: str | None, event_types: list[str], active: bool
) -> tuple[ErpEndpoint, bool, bool]:
    """Create or update an endpoint; the secret is required on create and kept when an
    update leaves it out. Returns ``(endpoint, created, changed)``."""
    values = {"url": url, "event_types": sorted(set(event_types)), "active": active}
    if secret:
        values["secret"] = secret
    with transaction.atomic():
        endpoint = ErpEndpoint.objects.select_for_update().filter(code=code).first()
        if endpoint is None:
            if not secret:
                raise ValidationFailed.field("secret", "A new endpoint needs a secret.")
            return ErpEndpoint.objects.create(code=code, **values), True, True
        changed = [k for k, v in values.items() if getattr(endpoint, k) != v]
        for key in changed:
            setattr(endpoint, key, values[key])
        if changed:
            endpoint.save(update_fields=changed)
        return endpoint, False, bool(changed)


def delete_endpoint(endpoint: ErpEndpoint) -> int:
    """Remove an endpoint; its undelivered events stay, as dead letters. Returns how many."""
    with transaction.atomic():
        undelivered = OutboxDelivery.objects.filter(
            endpoint=endpoint, status=DeliveryStatus.PENDING
        ).update(
            status=DeliveryStatus.DEAD,
            last_error=f"Endpoint {endpoint.code} was deleted.",
            locked_until=None,
        )
        endpoint.delete()  # deliveries keep endpoint_code; their FK becomes NULL
        return undelivered


def replay_deliveries(deliveries) -> int:
    """Put dead letters back in the queue (their endpoint must still exist)."""
    return OutboxDelivery.objects.filter(
        pk__in=[d.pk for d in deliveries], status=DeliveryStatus.DEAD, endpoint__isnull=False
    ).update(
        status=DeliveryStatus.PENDING,
        next_attempt_at=timezone.now(),
        locked_until=None,
        last_error="",
    )


def set_machine_connection(machine: Machine, connection: dict | None) -> bool:
    from shopfloor.plc.services import set_machine_connection as set_connection

    return set_connection(machine, connection=connection)
