from django.contrib import admin, messages

from mes.admin import ReadOnlyAdmin
from mes.errors import DomainError

from . import services
from .models import SignInThrottle, Terminal


@admin.register(Terminal)
class TerminalAdmin(ReadOnlyAdmin):
    """Terminals are enrolled at the terminal's setup screen; here they are listed and
    revoked (through the service, with an audit record)."""

    list_display = [
        "name",
        "work_center",
        "enrolled_by",
        "enrolled_at",
        "last_seen_at",
        "revoked_at",
        "revoked_by",
    ]
    list_filter = ["work_center"]
    list_select_related = ["work_center", "enrolled_by", "revoked_by"]
    search_fields = ["name", "work_center__code"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected terminals", permissions=["change"])
    def revoke(self, request, queryset):
        for terminal in queryset.filter(revoked_at__isnull=True):
            try:
                services.revoke_terminal(terminal, actor=request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Revoked {terminal.name}.", messages.SUCCESS)

    def has_change_permission(self, request, obj=None):
        # Needed for the revoke action only: the change form itself shows nothing to edit.
        return obj is None and request.user.has_perm("terminal.change_terminal")


@admin.register(SignInThrottle)
class SignInThrottleAdmin(ReadOnlyAdmin):
    """Sign-in attempts being counted per badge and terminal; a supervisor unlocks one."""

    list_display = ["key", "attempts", "last_at"]
    search_fields = ["key"]
    actions = ["unlock"]

    @admin.action(description="Unlock (forget the counted attempts)", permissions=["change"])
    def unlock(self, request, queryset):
        done = services.clear_sign_in_attempts(
            list(queryset.values_list("key", flat=True)), actor=request.user
        )
        self.message_user(request, f"Unlocked {done}.", messages.SUCCESS)

    def has_change_permission(self, request, obj=None):
        return obj is None and request.user.has_perm("terminal.change_signinthrottle")
