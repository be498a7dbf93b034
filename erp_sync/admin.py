from django.contrib import admin

from .models import OutboxEvent


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    """Read-only: events are written by the core services, in the change's transaction."""

    list_display = ["id", "occurred_at", "event_type", "aggregate_key", "event_id"]
    list_filter = ["event_type"]
    search_fields = ["aggregate_key", "event_id"]
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
