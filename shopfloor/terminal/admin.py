from django.contrib import admin

from .models import SignInFailure


@admin.register(SignInFailure)
class SignInFailureAdmin(admin.ModelAdmin):
    list_display = ["at", "badge", "terminal"]
    search_fields = ["badge", "terminal"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
