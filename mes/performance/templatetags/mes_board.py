"""Filters for the supervisors' screens: ratios as percentages, states as words and
symbols, durations, and times on the plant's clock."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _

from mes.choices import MachineState

register = template.Library()
DASH = "\u2013"  # an en dash: no value

ICONS = {
    "running": "▶",
    "idle": "❚❚",
    "down": "■",
    "setup": "⚙",
    "offline": "⌁",
    "unknown": "?",
    "blocked": "⊘",
}


@register.filter
def percent(value: float | None) -> str:
    """0.8123 as "81 %"; undefined (None) as a dash."""
    if value is None or value == "":
        return DASH
    return f"{round(float(value) * 100)} %"


@register.filter
def state_icon(state: str) -> str:
    return ICONS.get(state, "?")


@register.filter
def state_word(state: str) -> str:
    if state == "blocked":
        return _("blocked")
    try:
        return str(MachineState(state).label).lower()
    except ValueError:
        return state


@register.filter
def since(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago: "45 s", "12 min", "3 h 05 min", "2 d 4 h"."""
    if moment is None:
        return DASH
    seconds = max(0, int(((now or timezone.now()) - moment).total_seconds()))
    return duration(seconds)


@register.filter
def duration(seconds: float | int | None) -> str:
    if seconds is None:
        return DASH
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@register.filter
def hours(seconds: float | None) -> str:
    """Seconds as hours with one decimal ("12.5 h")."""
    if seconds is None:
        return DASH
    return f"{float(seconds) / 3600:.1f} h"


@register.filter
def local_time(moment: datetime | None, zone: str = "") -> str:
    """HH:MM on the plant's clock (a site's zone, else the server's)."""
    if moment is None:
        return DASH
    try:
        tz = zoneinfo.ZoneInfo(zone) if zone else timezone.get_current_timezone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = timezone.get_current_timezone()
    return f"{timezone.localtime(moment, tz):%H:%M}"


@register.filter
def plus_seconds(a: float, b: float) -> float:
    return float(a or 0) + float(b or 0)
