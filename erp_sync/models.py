"""Outbound events to the ERP (transactional outbox).

Rows are written by the core services in the same transaction as the change that caused
them; delivery to the configured ERP endpoints is a separate concern (Celery task).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mes.formats import iso_utc


class EventType(models.TextChoices):
    WORK_ORDER_UPDATED = "work_order.updated", "work_order.updated"
    CONFIRMATION_CREATED = "confirmation.created", "confirmation.created"
    SCHEDULE_CHANGED = "schedule.changed", "schedule.changed"


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
