"""Admin for machine connectivity and downtime. Configuration is saved through the services
(the same validation as the API); what the poller writes is read-only here, but for the
reason of a stop, corrected through :func:`shopfloor.downtime.set_downtime_reason`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from mes.admin import ReadOnlyAdmin
from mes.errors import DomainError

from .downtime import MAX_REASON, set_downtime_reason
from .models import (
    DeviceProfile,
    DowntimeReason,
    DowntimeRecord,
    MachineConnection,
    MachineStateEvent,
    PlcStatus,
    UnassignedCount,
)
from .plc import services
from .plc.config import parse_connection
from .plc.registers import SpecError, parse_register_map

JSON_WIDGET = forms.Textarea(attrs={"rows": 14, "cols": 90, "style": "font-family: monospace"})
REGISTER_MAP_HELP = (
    'The contract\'s "registers" object, e.g. {"state": {"table": "holding", "address": 0}, '
    '"state_map": {"1": "running", "2": "idle", "3": "down", "4": "setup"}, '
    '"good_count": {"table": "holding", "address": 1, "words": 2, "word_order": "big"}, '
    '"scrap_count": null}'
)


def _field_errors(form: forms.Form, exc: SpecError, fields: dict[str, str]) -> None:
    """Put errors named by path (``connection.registers.state.table``) on the form field
    that path belongs to; deeper paths keep their name in the message."""
    for path, texts in exc.errors.items():
        prefix = next((p for p in fields if path == p or path.startswith(p + ".")), None)
        if prefix is None:
            form.add_error(None, [f"{path}: {t}" for t in texts])
        elif path == prefix:
            form.add_error(fields[prefix], texts)
        else:
            form.add_error(fields[prefix], [f"{path[len(prefix) + 1 :]}: {t}" for t in texts])


class DeviceProfileForm(forms.ModelForm):
    register_map = forms.JSONField(widget=JSON_WIDGET, help_text=REGISTER_MAP_HELP)

    class Meta:
        model = DeviceProfile
        fields = ["code", "name", "register_map", "notes"]

    def clean_register_map(self) -> Any:
        data = self.cleaned_data["register_map"]
        try:
            return parse_register_map(data).as_json()
        except SpecError as exc:
            raise forms.ValidationError(
                [f"{k}: {' '.join(v)}" for k, v in exc.errors.items()]
            ) from None


@admin.register(DeviceProfile)
class DeviceProfileAdmin(admin.ModelAdmin):
    form = DeviceProfileForm
    list_display = ["code", "name", "machines", "updated_at"]
    search_fields = ["code", "name"]

    @admin.display(description="machines")
    def machines(self, obj: DeviceProfile) -> int:
        return obj.connections.count()

    def save_model(self, request, obj, form, change) -> None:
        profile, _ = services.save_device_profile(
            code=obj.code, name=obj.name, registers=obj.register_map, notes=obj.notes
        )
        obj.pk = profile.pk


class MachineConnectionForm(forms.ModelForm):
    register_map = forms.JSONField(
        widget=JSON_WIDGET,
        required=False,
        help_text="Leave empty to use the device profile's map. " + REGISTER_MAP_HELP,
    )
    group = forms.ChoiceField(choices=[])

    class Meta:
        model = MachineConnection
        fields = [
            "machine",
            "host",
            "port",
            "unit_id",
            "poll_interval_ms",
            "timeout_ms",
            "profile",
            "register_map",
            "group",
            "enabled",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"].choices = [(g, g) for g in settings.MES_PLC_GROUPS]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        profile = data.get("profile")
        connection = {
            "host": data.get("host"),
            "port": data.get("port"),
            "unit_id": data.get("unit_id"),
            "poll_interval_ms": data.get("poll_interval_ms"),
            "timeout_ms": data.get("timeout_ms"),
            "group": data.get("group"),
            "profile": profile.code if profile else None,
            "enabled": bool(data.get("enabled")),
        }
        if data.get("register_map") and not profile:
            connection["registers"] = data["register_map"]
        try:
            self.spec = parse_connection(connection, groups=tuple(settings.MES_PLC_GROUPS))
        except SpecError as exc:
            fields = {f"connection.{name}": name for name in connection}
            fields["connection.registers"] = "register_map"
            _field_errors(self, exc, fields)
            return data
        if problem := services.plc_host_problem(self.spec.host):
            self.add_error("host", problem)
        return data


@admin.register(MachineConnection)
class MachineConnectionAdmin(admin.ModelAdmin):
    form = MachineConnectionForm
    list_display = [
        "machine",
        "host",
        "port",
        "unit_id",
        "profile",
        "group",
        "enabled",
        "last_read",
        "last_error",
    ]
    list_filter = ["group", "enabled", "profile"]
    search_fields = ["machine__code", "host"]
    list_select_related = ["machine", "profile", "machine__plc_status"]
    autocomplete_fields = ["machine"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return ["machine"] if obj is not None else []

    @admin.display(description="last read")
    def last_read(self, obj: MachineConnection):
        status = getattr(obj.machine, "plc_status", None)
        return status.last_read_at if status else None

    @admin.display(description="last error")
    def last_error(self, obj: MachineConnection) -> str:
        status = getattr(obj.machine, "plc_status", None)
        return status.last_error if status else ""

    def save_model(self, request, obj, form, change) -> None:
        try:
            services.configure_connection(obj.machine, spec=form.spec)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk = MachineConnection.objects.get(machine=obj.machine).pk

    def delete_model(self, request, obj) -> None:
        services.remove_connection(obj.machine)

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        for connection in queryset.select_related("machine"):
            services.remove_connection(connection.machine)


@admin.register(PlcStatus)
class PlcStatusAdmin(ReadOnlyAdmin):
    list_display = [
        "machine",
        "last_read_at",
        "last_error",
        "consecutive_failures",
        "error_count",
        "good_raw",
        "scrap_raw",
        "pending_good",
        "pending_scrap",
    ]
    list_select_related = ["machine"]
    search_fields = ["machine__code"]


@admin.register(MachineStateEvent)
class MachineStateEventAdmin(ReadOnlyAdmin):
    list_display = ["machine", "state", "started_at", "source", "reason"]
    list_filter = ["state", "machine"]
    list_select_related = ["machine"]
    date_hierarchy = "started_at"


@admin.register(DowntimeReason)
class DowntimeReasonAdmin(admin.ModelAdmin):
    list_display = ["__str__", "code", "planned", "active", "position"]
    list_filter = ["planned", "active", "parent"]
    search_fields = ["code", "name"]
    list_editable = ["active", "position"]


class DowntimeReasonForm(forms.ModelForm):
    note = forms.CharField(
        required=False,
        max_length=MAX_REASON,
        help_text="Words of your own, beside or instead of a reason from the tree.",
    )

    class Meta:
        model = DowntimeRecord
        fields = ["reason_choice"]

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("reason_choice") and not (data.get("note") or "").strip():
            raise forms.ValidationError("Pick a reason from the tree or write a note.")
        return data


@admin.register(DowntimeRecord)
class DowntimeRecordAdmin(admin.ModelAdmin):
    form = DowntimeReasonForm
    list_display = ["machine", "cause", "started_at", "ended_at", "operation", "reason"]
    list_filter = ["cause", "reason_choice__planned", "reason_choice__parent", "machine"]
    list_select_related = ["machine", "operation__work_order"]
    readonly_fields = [
        "machine",
        "operation",
        "cause",
        "started_at",
        "ended_at",
        "reason",
        "reason_by",
        "reason_at",
    ]
    date_hierarchy = "started_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        choice = form.cleaned_data.get("reason_choice")
        try:
            set_downtime_reason(
                obj,
                code=choice.code if choice else "",
                note=form.cleaned_data.get("note", ""),
                actor=request.user,
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)


@admin.register(UnassignedCount)
class UnassignedCountAdmin(ReadOnlyAdmin):
    list_display = ["machine", "good", "scrap", "first_at", "last_at", "note", "closed_at"]
    list_filter = [("closed_at", admin.EmptyFieldListFilter), "machine"]
    list_select_related = ["machine"]
    actions = ["close"]

    @admin.action(description="Close (dealt with)")
    def close(self, request: HttpRequest, queryset: QuerySet) -> None:
        closed = sum(services.close_unassigned_count(row) for row in queryset)
        self.message_user(request, f"{closed} closed.")
