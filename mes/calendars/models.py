"""A site's shift calendar: shifts on weekdays with their breaks, and exceptions on dates
(holidays and shutdowns closed, extra shifts open), in the site's time zone.

Configuration, edited in the admin; :mod:`mes.calendars.working_time` turns it into working
time, and :mod:`mes.calendars.selectors` reads it for the live schedule and performance.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from mes.models import Site

from . import working_time

SHIFT_CODE = RegexValidator(r"^[A-Za-z0-9._-]{1,32}$", _("Use letters, digits, dots or hyphens."))
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _span(start: time, end: time) -> timedelta:
    """The length of a window from ``start`` to ``end`` (past midnight when end <= start)."""
    day = date(2000, 1, 1)
    finish = datetime.combine(day if end > start else day + timedelta(days=1), end)
    return finish - datetime.combine(day, start)


class Shift(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="shifts")
    code = models.CharField(_("code"), max_length=32, validators=[SHIFT_CODE])
    name = models.CharField(_("name"), max_length=100)
    start = models.TimeField(_("starts"))
    end = models.TimeField(
        _("ends"), help_text=_("At or before the start: the shift ends the next day.")
    )
    monday = models.BooleanField(_("Monday"), default=True)
    tuesday = models.BooleanField(_("Tuesday"), default=True)
    wednesday = models.BooleanField(_("Wednesday"), default=True)
    thursday = models.BooleanField(_("Thursday"), default=True)
    friday = models.BooleanField(_("Friday"), default=True)
    saturday = models.BooleanField(_("Saturday"), default=False)
    sunday = models.BooleanField(_("Sunday"), default=False)
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["site", "start", "code"]
        verbose_name = _("shift")
        constraints = [
            models.UniqueConstraint(fields=["site", "code"], name="shift_code_per_site"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(i for i, name in enumerate(WEEKDAYS) if getattr(self, name))

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not self.weekdays:
            errors["monday"] = _("Choose at least one weekday.")
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            errors["valid_until"] = _("Valid until is before valid from.")
        if errors:
            raise ValidationError(errors)

    def spec(self) -> working_time.ShiftSpec:
        return working_time.ShiftSpec(
            code=self.code,
            name=self.name,
            weekdays=self.weekdays,
            start=self.start,
            end=self.end,
            breaks=tuple((b.start, b.end) for b in self.breaks.all()),
            valid_from=self.valid_from,
            valid_until=self.valid_until,
        )


class ShiftBreak(models.Model):
    shift = models.ForeignKey(Shift, on_delete=models.CASCADE, related_name="breaks")
    start = models.TimeField(_("starts"))
    end = models.TimeField(_("ends"))

    class Meta:
        ordering = ["shift", "start"]
        verbose_name = _("break")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def clean(self) -> None:
        if self.start is not None and self.start == self.end:
            raise ValidationError({"end": _("A break ends after it starts.")})


def break_inside(shift: tuple[time, time], pause: tuple[time, time]) -> bool:
    """Whether a break lies inside a shift (both as times of day; a shift or break whose end
    is at or before its start goes past midnight)."""
    (shift_start, shift_end), (start, end) = shift, pause
    offset = _span(shift_start, start) if start != shift_start else timedelta(0)
    return offset + _span(start, end) <= _span(shift_start, shift_end)


class ExceptionKind(models.TextChoices):
    CLOSED = working_time.CLOSED, _("Closed (holiday, shutdown)")
    EXTRA = working_time.EXTRA, _("Extra working time")


class CalendarException(models.Model):
    """A date that differs from the pattern: closed (the whole day, midnight to midnight, or
    a window) or extra working time in a window (an extra Saturday shift)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="calendar_exceptions")
    day = models.DateField(_("date"))
    kind = models.CharField(_("kind"), max_length=8, choices=ExceptionKind.choices)
    start = models.TimeField(_("from"), null=True, blank=True)
    end = models.TimeField(
        _("until"), null=True, blank=True, help_text=_("At or before “from”: the next day.")
    )
    name = models.CharField(_("name"), max_length=100)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["site", "day", "start"]
        verbose_name = _("calendar exception")
        indexes = [models.Index(fields=["site", "day"], name="calendar_exception_day")]

    def __str__(self) -> str:
        window = f" {self.start:%H:%M}-{self.end:%H:%M}" if self.start and self.end else ""
        return f"{self.day:%Y-%m-%d}{window} {self.name}"

    def clean(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValidationError(_("Give both times of the window, or neither (the whole day)."))
        if self.kind == ExceptionKind.EXTRA and self.start is None:
            raise ValidationError({"start": _("Extra working time needs its window.")})

    def spec(self) -> working_time.ExceptionSpec:
        return working_time.ExceptionSpec(
            day=self.day, kind=self.kind, start=self.start, end=self.end, name=self.name
        )
