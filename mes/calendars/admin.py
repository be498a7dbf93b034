"""Shift calendars in the admin: shifts with their breaks, and exceptions by date."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import WEEKDAYS, CalendarException, Shift, ShiftBreak, break_inside


class BreakFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        shift = self.instance
        if shift.start is None or shift.end is None:
            return
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if data.get("DELETE") or not data.get("start") or not data.get("end"):
                continue
            if not break_inside((shift.start, shift.end), (data["start"], data["end"])):
                raise ValidationError(
                    _("The break %(start)s-%(end)s is not inside the shift %(shift)s.")
                    % {
                        "start": f"{data['start']:%H:%M}",
                        "end": f"{data['end']:%H:%M}",
                        "shift": f"{shift.start:%H:%M}-{shift.end:%H:%M}",
                    }
                )


class BreakInline(admin.TabularInline):
    model = ShiftBreak
    formset = BreakFormSet
    extra = 1


@admin.register(Shift)
class ShiftAdmin(admin.ModelAdmin):
    list_display = ["site", "code", "name", "start", "end", "days", "valid_from", "valid_until"]
    list_filter = ["site", "active"]
    list_select_related = ["site"]
    inlines = [BreakInline]
    fields = [
        ("site", "code", "name"),
        ("start", "end"),
        tuple(WEEKDAYS),
        ("valid_from", "valid_until"),
        "active",
    ]

    @admin.display(description=gettext_lazy("days"))
    def days(self, obj: Shift) -> str:
        return " ".join(name[:2].title() for name in WEEKDAYS if getattr(obj, name))


@admin.register(CalendarException)
class CalendarExceptionAdmin(admin.ModelAdmin):
    list_display = ["site", "day", "kind", "start", "end", "name"]
    list_filter = ["site", "kind"]
    date_hierarchy = "day"
    list_select_related = ["site"]
