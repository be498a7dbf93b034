"""Admin for master data; work orders, operations and machines change state only through
the services (admin actions and ``save_model`` call them); audit records are read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect

from . import services
from .accounts import set_operator_pin, validate_pin
from .errors import DomainError
from .models import (
    Area,
    AuditRecord,
    Machine,
    Operation,
    OperatorProfile,
    Product,
    Routing,
    RoutingStep,
    Site,
    WorkCenter,
    WorkOrder,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written only by the services (audit trail, outbox, state events): the admin
    shows them and changes nothing."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class CodeFixedAdmin(admin.ModelAdmin):
    """Codes are the ERP's keys (and part of stored work-order renderings): set once."""

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "code"] if obj is not None else fields


@admin.register(Site)
class SiteAdmin(CodeFixedAdmin):
    list_display = ["code", "name", "time_zone"]
    search_fields = ["code", "name"]


@admin.register(Area)
class AreaAdmin(CodeFixedAdmin):
    list_display = ["code", "name", "site"]
    list_filter = ["site"]
    search_fields = ["code", "name"]
    list_select_related = ["site"]


@admin.register(WorkCenter)
class WorkCenterAdmin(CodeFixedAdmin):
    list_display = ["code", "name", "area"]
    list_filter = ["area__site", "area"]
    search_fields = ["code", "name"]
    list_select_related = ["area"]


@admin.register(Machine)
class MachineAdmin(CodeFixedAdmin):
    list_display = ["code", "name", "work_center", "state", "state_since", "is_active"]
    list_filter = ["state", "is_active", "work_center__area", "work_center"]
    search_fields = ["code", "name"]
    list_select_related = ["work_center"]
    # State changes only through the services (the PLC, or declared on the machines page).
    readonly_fields = ["state", "state_since", "expected_back_at"]


@admin.register(Product)
class ProductAdmin(CodeFixedAdmin):
    list_display = ["code", "name", "unit"]
    search_fields = ["code", "name"]


class RoutingStepInline(admin.TabularInline):
    model = RoutingStep
    extra = 0
    fields = ["sequence", "name", "work_center", "setup_seconds", "cycle_seconds", "instructions"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "instructions":
            kwargs["widget"] = forms.Textarea(attrs={"rows": 2, "cols": 40})
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Routing)
class RoutingAdmin(CodeFixedAdmin):
    list_display = ["code", "product", "version", "active"]
    list_filter = ["active", "product"]
    search_fields = ["code", "product__code", "product__name"]
    list_select_related = ["product"]
    inlines = [RoutingStepInline]
    actions = ["make_active"]

    def save_model(self, request, obj, form, change):
        # The "one active routing per product" rule lives in a service.
        if obj.active:
            obj.active = False
            obj.save()
            services.activate_routing(obj)
        else:
            obj.save()

    @admin.action(description="Make the selected routing its product's active one")
    def make_active(self, request: HttpRequest, queryset):
        for routing in queryset:
            services.activate_routing(routing)
        self.message_user(request, "Routing(s) activated.", messages.SUCCESS)


# --- Work orders ------------------------------------------------------------------------------


class WorkOrderForm(forms.ModelForm):
    release = forms.BooleanField(required=False, help_text="Release it to the floor at once.")

    class Meta:
        model = WorkOrder
        fields = ["number", "product", "routing", "quantity", "due_date", "priority", "notes"]


class WorkOrderActionForm(helpers.ActionForm):
    reason = forms.CharField(required=False, help_text="Required to hold or cancel.")


class OperationInline(admin.TabularInline):
    model = Operation
    extra = 0
    can_delete = False
    fields = [
        "sequence",
        "name",
        "work_center",
        "machine",
        "status",
        "quantity_good",
        "quantity_scrap",
        "planned_start",
        "planned_end",
        "actual_start",
        "actual_end",
    ]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WorkOrder)
class WorkOrderAdmin(admin.ModelAdmin):
    form = WorkOrderForm
    list_display = [
        "number",
        "product",
        "quantity",
        "quantity_good",
        "due_date",
        "projected_end",
        "at_risk",
        "priority",
        "status",
        "updated_at",
    ]
    list_filter = ["status", "priority", "at_risk", "product"]
    search_fields = ["number", "product__code", "notes"]
    date_hierarchy = "due_date"
    list_select_related = ["product"]
    readonly_fields = [
        "status",
        "quantity_good",
        "quantity_scrap",
        "actual_start",
        "actual_end",
        "projected_end",
        "at_risk",
        "created_at",
        "updated_at",
        "version",
    ]
    inlines = [OperationInline]
    actions = ["release", "hold", "cancel"]
    action_form = WorkOrderActionForm

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None and "release" in form.base_fields:
            del form.base_fields["release"]
        return form

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is not None:
            fields = [f for f in fields if f != "release"]
        return fields

    def has_delete_permission(self, request, obj=None):
        return False  # cancel instead: work orders are part of the audit trail

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            if change:
                current = WorkOrder.objects.get(pk=obj.pk)
                saved, _ = services.update_work_order(
                    current,
                    actor=request.user,
                    quantity=data["quantity"],
                    due_date=data["due_date"],
                    priority=data["priority"],
                    notes=data["notes"],
                    product=data["product"],
                    routing=data["routing"],
                )
            else:
                saved = services.create_work_order(
                    number=data["number"],
                    product=data["product"],
                    routing=data["routing"],
                    quantity=data["quantity"],
                    due_date=data["due_date"],
                    priority=data["priority"],
                    notes=data["notes"],
                    actor=request.user,
                    release=data.get("release", False),
                )
        except DomainError as exc:
            # Raised before anything was written; the admin shows it on the form.
            raise ValidationError(exc.message) from exc
        obj.pk = saved.pk

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            with transaction.atomic():
                return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:
            # A service refused the change (nothing was written): say why and show the form.
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def _run(self, request, queryset, label, fn, needs_reason=False):
        reason = request.POST.get("reason", "").strip()
        if needs_reason and not reason:
            self.message_user(
                request,
                f"Give a reason to {label}: type it into the reason box beside the action.",
                messages.ERROR,
            )
            return
        done = 0
        for wo in queryset:
            try:
                kwargs = {"reason": reason} if needs_reason else {}
                fn(wo, actor=request.user, **kwargs)
                done += 1
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        if done:
            self.message_user(
                request, f"{label.capitalize()}: {done} work order(s).", messages.SUCCESS
            )

    @admin.action(
        description="Release selected work orders (or release their hold)", permissions=["change"]
    )
    def release(self, request, queryset):
        self._run(request, queryset, "release", services.release_work_order)

    @admin.action(
        description="Put selected work orders on hold (reason required)", permissions=["change"]
    )
    def hold(self, request, queryset):
        self._run(request, queryset, "hold", services.hold_work_order, needs_reason=True)

    @admin.action(
        description="Cancel selected work orders (reason required)", permissions=["change"]
    )
    def cancel(self, request, queryset):
        self._run(request, queryset, "cancel", services.cancel_work_order, needs_reason=True)


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    """State changes go through the operator terminal and the services."""

    list_display = [
        "__str__",
        "name",
        "work_center",
        "machine",
        "status",
        "quantity_good",
        "quantity_scrap",
        "actual_start",
        "actual_end",
    ]
    list_filter = ["status", "work_center"]
    search_fields = ["work_order__number", "name"]
    list_select_related = ["work_order", "work_center", "machine"]


# --- People -----------------------------------------------------------------------------------


class OperatorProfileForm(forms.ModelForm):
    pin = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="4-8 digits. Leave empty to keep the current PIN.",
    )
    clear_pin = forms.BooleanField(
        required=False,
        help_text="Remove the PIN: the operator cannot sign in until a new one is set.",
    )

    class Meta:
        model = OperatorProfile
        fields = ["user", "badge"]

    def clean_pin(self):
        pin = self.cleaned_data["pin"]
        if pin:
            try:
                validate_pin(pin)
            except DomainError as exc:
                raise ValidationError(exc.message) from exc
        return pin


@admin.register(OperatorProfile)
class OperatorProfileAdmin(admin.ModelAdmin):
    form = OperatorProfileForm
    list_display = ["badge", "user", "has_pin"]
    search_fields = ["badge", "user__username", "user__first_name", "user__last_name"]
    list_select_related = ["user"]

    def get_readonly_fields(self, request, obj=None):
        # Whose badge it is stays the admin role's decision: a supervisor sets badges and
        # PINs of operators, and cannot put a badge of theirs on another account.
        if obj is not None and not request.user.is_superuser:
            return ["user"]
        return []

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("clear_pin"):
            set_operator_pin(obj, pin=None)
        elif form.cleaned_data.get("pin"):
            set_operator_pin(obj, pin=form.cleaned_data["pin"])


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "occurred_at",
        "entity_label",
        "action",
        "from_state",
        "to_state",
        "actor_name",
        "reason",
    ]
    list_filter = ["entity_type", "action"]
    search_fields = ["entity_label", "actor_name", "reason"]
    date_hierarchy = "occurred_at"
