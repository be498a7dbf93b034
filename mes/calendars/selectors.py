"""Reads of the shift calendars, as the plain data :mod:`mes.calendars.working_time` takes."""

from __future__ import annotations

import hashlib
import logging
import zoneinfo
from datetime import date

from django.db.models import Prefetch

from mes.models import Site, WorkCenter

from .models import CalendarException, Shift, ShiftBreak
from .working_time import Calendars, CalendarSpec, WorkingTime

logger = logging.getLogger(__name__)


def _zone(site: Site) -> str:
    try:
        zoneinfo.ZoneInfo(site.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        logger.error("Site %s: unknown time zone %r, planning in UTC", site.code, site.time_zone)
        return "UTC"
    return site.time_zone


def calendar_specs(since: date | None = None) -> dict[int, CalendarSpec]:
    """Every site's calendar by site id (exceptions from ``since`` on, when given). Three
    queries whatever the number of sites."""
    shifts: dict[int, list] = {}
    for shift in Shift.objects.filter(active=True).prefetch_related(
        Prefetch("breaks", queryset=ShiftBreak.objects.order_by("start"))
    ):
        shifts.setdefault(shift.site_id, []).append(shift.spec())
    exceptions: dict[int, list] = {}
    rows = CalendarException.objects.all()
    if since is not None:
        rows = rows.filter(day__gte=since)
    for exception in rows.order_by("day", "start"):
        exceptions.setdefault(exception.site_id, []).append(exception.spec())
    return {
        site.pk: CalendarSpec(
            time_zone=_zone(site),
            shifts=tuple(shifts.get(site.pk, ())),
            exceptions=tuple(exceptions.get(site.pk, ())),
        )
        for site in Site.objects.only("pk", "code", "time_zone")
    }


def working_times(since: date | None = None) -> dict[int, WorkingTime]:
    """Every site's working time by site id."""
    return {pk: WorkingTime(spec) for pk, spec in calendar_specs(since).items()}


def calendar_of_site(site: Site) -> WorkingTime:
    spec = calendar_specs().get(site.pk, CalendarSpec(time_zone=_zone(site)))
    return WorkingTime(spec)


def calendars_by_work_center(since: date | None = None) -> Calendars:
    """Each work center's working time (its site's calendar)."""
    by_site = working_times(since)
    return Calendars(
        {
            pk: by_site[site_id]
            for pk, site_id in WorkCenter.objects.values_list("pk", "area__site_id")
            if site_id in by_site
        }
    )


def fingerprint() -> str:
    """Changes whenever a calendar (or a site's time zone) changes: the live schedule
    re-plans then."""
    parts = [
        list(Shift.objects.order_by("pk").values_list("pk", "updated_at", "active")),
        list(ShiftBreak.objects.order_by("pk").values_list("pk", "shift_id", "start", "end")),
        list(CalendarException.objects.order_by("pk").values_list("pk", "updated_at")),
        list(Site.objects.order_by("pk").values_list("pk", "time_zone")),
        list(WorkCenter.objects.order_by("pk").values_list("pk", "area__site_id")),
    ]
    return hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()
