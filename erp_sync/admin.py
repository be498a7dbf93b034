from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from mes.admin import ReadOnlyAdmin
from mes.errors import DomainError

from .auth import create_api_client
from .delivery import delivery_lag
from .models import ApiClient, ErpEndpoint, EventType, OutboxDelivery, OutboxEvent
from .services import (
    SECRET_LENGTH,
    delete_endpoint,
    endpoint_url_problem,
    replay_deliveries,
    upsert_endpoint,
)


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    """Read-only: events are written by the core services, in the change's transaction."""

    list_display = ["id", "occurred_at", "event_type", "aggregate_key", "event_id"]
    list_filter = ["event_type"]
    search_fields = ["aggregate_key", "event_id"]
    date_hierarchy = "occurred_at"


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    """Create clients here or with ``manage.py create_api_client``; the token is shown once."""

    list_display = ["name", "scope", "is_active", "token_hint", "created_at", "last_used_at"]
    list_filter = ["scope", "is_active"]
    search_fields = ["name"]
    fields = ["name", "scope", "is_active", "token_hint", "created_at", "last_used_at"]
    readonly_fields = ["token_hint", "created_at", "last_used_at"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "name", "scope"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["is_active"])
            return
        try:
            client, token = create_api_client(name=obj.name, scope=obj.scope)
        except DomainError as exc:
            raise ValidationError(exc.message) from exc
        obj.pk = client.pk
        self.message_user(
            request,
            f"Token for {client.name} (copy it now, it is not shown again): {token}",
            messages.WARNING,
        )


class ErpEndpointForm(forms.ModelForm):
    """The secret is write-only: a password input that is always empty, also after an
    error; left empty on a change, the current secret stays."""

    secret = forms.CharField(
        label="Secret",
        required=False,
        strip=False,
        min_length=SECRET_LENGTH[0],
        max_length=SECRET_LENGTH[1],
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="HMAC-SHA256 key of the X-MES-Signature header, stored encrypted and never "
        "shown. Required for a new endpoint; leave empty to keep the current one.",
    )
    url = forms.URLField(label="URL", max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ErpEndpoint
        fields = ["code", "url", "secret", "event_types", "active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if problem := endpoint_url_problem(url):
            raise forms.ValidationError(problem)
        return url

    def clean(self) -> dict:
        data = super().clean()
        if self.instance.pk is None and not data.get("secret"):
            self.add_error("secret", "A new endpoint needs a secret.")
        return data


@admin.register(ErpEndpoint)
class ErpEndpointAdmin(admin.ModelAdmin):
    """Saved through :func:`erp_sync.services.upsert_endpoint`; the code names the endpoint
    in its deliveries, so it is fixed once created."""

    form = ErpEndpointForm
    list_display = ["code", "url", "active", "event_types"]
    list_filter = ["active"]
    search_fields = ["code", "url"]

    def get_readonly_fields(self, request, obj=None):
        return ["code"] if obj else []

    def save_model(self, request, obj, form, change):
        try:
            endpoint, _, _ = upsert_endpoint(
                obj.code,
                url=form.cleaned_data["url"],
                secret=form.cleaned_data.get("secret") or None,
                event_types=form.cleaned_data["event_types"],
                active=form.cleaned_data["active"],
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk = endpoint.pk

    def delete_model(self, request, obj):
        delete_endpoint(obj)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            delete_endpoint(endpoint)


@admin.register(OutboxDelivery)
class OutboxDeliveryAdmin(ReadOnlyAdmin):
    """Deliveries per endpoint; dead letters can be replayed."""

    list_display = [
        "id",
        "event",
        "endpoint_code",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    ]
    list_filter = ["status", "endpoint_code"]
    search_fields = ["aggregate_key", "event__event_id"]
    list_select_related = ["event"]
    actions = ["replay"]

    def changelist_view(self, request, extra_context=None):
        lag = delivery_lag()
        self.message_user(
            request,
            f"Pending: {lag['pending']}, dead letters: {lag['dead']}, oldest undelivered: "
            f"{lag['oldest_age_seconds']:.0f} s old.",
            messages.INFO,
        )
        return super().changelist_view(request, extra_context)

    @admin.action(description="Replay the selected dead letters", permissions=["view"])
    def replay(self, request, queryset):
        count = replay_deliveries(queryset)
        self.message_user(request, f"{count} dead letter(s) queued again.", messages.SUCCESS)
