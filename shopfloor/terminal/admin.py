from django.contrib import admin

from .models import DowntimeReason, SignInFailure


@admin.register(DowntimeReason)
class DowntimeReasonAdmin(admin.ModelAdmin):
    list_display = ["__str__", "code", "planned", "active", "position"]
    list_filter = ["planned", "active", "parent"]
    search_fields = ["code", "name"]
    list_editable = ["active", "position"]


@admin.register(SignInFailure)
class SignInFailureAdmin(admin.ModelAdmin):
    list_display = ["at", "badge", "terminal"]
    search_fields = ["badge", "terminal"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
