"""Cache invalidation only: the rollups keep each site's working time in memory; a change
of a calendar, a site or a work center drops it in this process (others reload it
within ``rollups.CALENDAR_TTL``)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from mes.calendars.models import CalendarException, Shift, ShiftBreak
from mes.models import Area, Site, WorkCenter

from .rollups import forget_calendars


def _forget(**kwargs) -> None:
    forget_calendars()


# Not Machine: it is saved at every state change; a machine moved to another site is
# picked up within the TTL.
for model in (Shift, ShiftBreak, CalendarException, Site, Area, WorkCenter):
    post_save.connect(_forget, sender=model, dispatch_uid=f"performance-forget-{model.__name__}")
    post_delete.connect(
        _forget, sender=model, dispatch_uid=f"performance-forget-{model.__name__}-d"
    )
