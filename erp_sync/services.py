"""Writes of the ERP side: endpoints, machine connections from the API, and replaying
dead letters. Delivery itself lives in :mod:`erp_sync.delivery`."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mes import crypto, netguard
from mes.errors import ValidationFailed
from mes.models import Machine

from .models import DeliveryStatus, ErpEndpoint, EventType, OutboxDelivery

SECRET_LENGTH = (16, 200)


def endpoint_url_problem(url: str) -> str | None:
    """Why the MES will not POST to ``url`` (a scheme other than http/https, an address
    that is not public and not in ``MES_OUTBOUND_ALLOWED_HOSTS``), or None. Host names are
    checked again at every delivery, on what they resolve to then."""
    allow = netguard.allow_list(tuple(settings.MES_OUTBOUND_ALLOWED_HOSTS))
    try:
        netguard.check_url(url, allow=allow)
    except netguard.TargetNotAllowed as exc:
        return exc.sentence()
    return None


def _validate_endpoint(url: str, secret: str | None, event_types: list[str]) -> None:
    errors: dict[str, list[str]] = {}
    if problem := endpoint_url_problem(url):
        errors["url"] = [problem]
    if secret and not SECRET_LENGTH[0] <= len(secret) <= SECRET_LENGTH[1]:
        errors["secret"] = [f"Give {SECRET_LENGTH[0]} to {SECRET_LENGTH[1]} characters."]
    unknown = sorted(set(event_types) - set(EventType.values))
    if not event_types or unknown:
        errors["event_types"] = [
            f"Unknown event types: {', '.join(unknown)}." if unknown else "Name one at least."
        ]
    if errors:
        raise ValidationFailed("The ERP endpoint is not valid.", errors=errors)


def _secret_differs(endpoint: ErpEndpoint, secret: str) -> bool:
    try:
        return endpoint.get_secret() != secret
    except crypto.SecretUnreadable:
        return True


def upsert_endpoint(
    code: str, *, url: str, secret: str | None, event_types: list[str], active: bool
) -> tuple[ErpEndpoint, bool, bool]:
    """Create or update an endpoint; the secret is required on create and kept when an
    update leaves it out, and stored encrypted. Returns ``(endpoint, created, changed)``."""
    _validate_endpoint(url, secret, event_types)
    values = {"url": url, "event_types": sorted(set(event_types)), "active": active}
    with transaction.atomic():
        endpoint = ErpEndpoint.objects.select_for_update().filter(code=code).first()
        if endpoint is None:
            if not secret:
                raise ValidationFailed.field("secret", "A new endpoint needs a secret.")
            endpoint = ErpEndpoint(code=code, **values)
            endpoint.set_secret(secret)
            endpoint.save()
            return endpoint, True, True
        changed = [k for k, v in values.items() if getattr(endpoint, k) != v]
        for key in changed:
            setattr(endpoint, key, values[key])
        if secret and _secret_differs(endpoint, secret):
            endpoint.set_secret(secret)
            changed.append("secret_encrypted")
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
