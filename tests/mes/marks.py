"""Marks for "what did this call write?": the highest id of a table before the call."""

from erp_sync.models import OutboxEvent
from mes.models import AuditRecord


def last_id(model) -> int:
    return model.objects.order_by("-id").values_list("id", flat=True).first() or 0


def last_ids() -> tuple[int, int]:
    """The last audit record's and the last outbox event's id."""
    return last_id(AuditRecord), last_id(OutboxEvent)
