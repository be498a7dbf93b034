"""Admin for inspection plans and scrap reasons (master data). What the floor records
(results, nonconformances, signatures) is read-only here: results are corrected on the
terminal and nonconformances closed by a signed disposition on the quality pages."""

from __future__ import annotations

from django.contrib import admin

from mes.admin import ReadOnlyAdmin

from .models import InspectionCharacteristic, InspectionResult, Nonconformance, ScrapReason


@admin.register(InspectionCharacteristic)
class InspectionCharacteristicAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "step",
        "routing",
        "kind",
        "lower_limit",
        "upper_limit",
        "unit",
        "mandatory",
        "reaction",
    )
    list_filter = ("kind", "reaction", "step__routing")
    search_fields = ("code", "name", "step__routing__code")
    list_select_related = ("step__routing",)
    fieldsets = (
        (None, {"fields": ("step", "code", "name", "kind", "position")}),
        ("Spec", {"fields": ("nominal", "lower_limit", "upper_limit", "unit", "decimals")}),
        ("Pass / fail", {"fields": ("defect_codes",)}),
        (
            "Sampling",
            {
                "fields": (
                    "sample_size",
                    "first_piece",
                    "every_n",
                    "every_minutes",
                    "last_piece",
                    "mandatory",
                    "reaction",
                )
            },
        ),
    )

    @admin.display(description="routing")
    def routing(self, obj: InspectionCharacteristic) -> str:
        return obj.step.routing.code


@admin.register(ScrapReason)
class ScrapReasonAdmin(admin.ModelAdmin):
    list_display = ("code", "text", "category", "position", "active")
    list_editable = ("text", "category", "position", "active")
    list_filter = ("category", "active")


@admin.register(InspectionResult)
class InspectionResultAdmin(ReadOnlyAdmin):
    list_display = (
        "seq",
        "series",
        "work_order",
        "sample_label",
        "values",
        "verdict",
        "version",
        "is_current",
        "recorded_by_name",
        "recorded_at",
    )
    list_filter = ("verdict", "is_current")
    search_fields = ("series", "work_order__number")
    list_select_related = ("work_order",)


@admin.register(Nonconformance)
class NonconformanceAdmin(ReadOnlyAdmin):
    list_display = ("number", "status", "work_order", "description", "disposition", "opened_at")
    list_filter = ("status", "reaction", "disposition")
    search_fields = ("number", "work_order__number")
    list_select_related = ("work_order",)
