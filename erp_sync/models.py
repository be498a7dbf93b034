"""Outbound events to the ERP (transactional outbox).

Rows are written by the core services in the same transaction as the change that caused
them; delivery to the configured ERP endpoints is a separate concern (Celery task).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mes import crypto
from mes.formats import iso_utc


class EventType(models.TextChoices):
    WORK_ORDER_UPDATED = "work_order.updated", "work_order.updated"
    CONFIRMATION_CREATED = "confirmation.created", "confirmation.created"
    SCHEDULE_CHANGED = "schedule.changed", "schedule.changed"
    QUALITY_NONCONFORMANCE = "quality.nonconformance", "quality.nonconformance"


class OutboxEvent(models.Model):
    # Autoincrementing position: the order in which events were written.
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(_("type"), max_length=32, choices=EventType.choices)
    # Events of one aggregate (a work order number) are delivered in order.
    aggregate_key = models.CharField(_("aggregate"), max_length=64, db_index=True)
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now)
    payload = models.JSONField(_("data"))

    class Meta:
        ordering = ["id"]
        verbose_name = _("outbox event")

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_key} {self.event_id}"

    def envelope(self) -> dict:
        """The body POSTed to an ERP endpoint, as the contract gives it."""
        return {
            "id": str(self.event_id),
            "type": self.event_type,
            "occurred_at": iso_utc(self.occurred_at),
            "data": self.payload,
        }


class Scope(models.TextChoices):
    ERP = "erp", _("ERP: work orders, confirmations, machines, master data (read)")
    INTEGRATOR = "integrator", _("Integrator: everything ERP has, plus writing master data")


class ApiClient(models.Model):
    """An ERP or integrator calling the API. Only a hash of its token is stored."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    scope = models.CharField(_("scope"), max_length=16, choices=Scope.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(_("token starts with"), max_length=8, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("API client")

    def __str__(self) -> str:
        return f"{self.name} ({self.scope})"

    def has_scope(self, scope: str) -> bool:
        if scope == Scope.ERP:
            return self.scope in (Scope.ERP, Scope.INTEGRATOR)
        return self.scope == scope


class ErpEndpoint(models.Model):
    """Where outbox events are POSTed. The secret signs each body (HMAC-SHA256); it is
    write-only (API and admin) and stored encrypted (:mod:`mes.crypto`)."""

    code = models.CharField(_("code"), max_length=64, unique=True)
    url = models.URLField(_("URL"), max_length=500)
    secret_encrypted = models.CharField(_("secret (encrypted)"), max_length=500, editable=False)
    event_types = models.JSONField(_("event types"), default=list)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["code"]
        verbose_name = _("ERP endpoint")

    def __str__(self) -> str:
        return self.code

    def wants(self, event_type: str) -> bool:
        return self.active and event_type in self.event_types

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)

    def get_secret(self) -> str:
        """The plain secret; raises :class:`mes.crypto.SecretUnreadable`."""
        return crypto.decrypt(self.secret_encrypted)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    DEAD = "dead", _("Dead letter")


class OutboxDelivery(models.Model):
    """One event for one endpoint. Delivered in order per (endpoint, work order): only the
    oldest undelivered delivery of an aggregate is ever attempted."""

    event = models.ForeignKey(OutboxEvent, on_delete=models.PROTECT, related_name="deliveries")
    endpoint = models.ForeignKey(
        ErpEndpoint, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    endpoint_code = models.CharField(_("endpoint"), max_length=64)
    aggregate_key = models.CharField(max_length=64)
    status = models.CharField(
        _("status"), max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    # A lease instead of a long transaction: a killed worker's claim simply expires.
    locked_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        verbose_name = _("outbox delivery")
        verbose_name_plural = _("outbox deliveries")
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["endpoint", "aggregate_key", "status"], name="delivery_agg"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_code} ({self.status})"
