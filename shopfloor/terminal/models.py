"""Operator terminal: enrolled terminals, sign-in throttles and one-time form tokens (the
downtime reason tree the terminal asks from is :class:`shopfloor.models.DowntimeReason`)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Terminal(models.Model):
    """A browser a supervisor enrolled as a shop-floor terminal at one work center. The
    browser's cookie carries only a random token; only its SHA-256 is stored here, and a
    revoked terminal is no terminal any more (its browser is sent back to setup)."""

    name = models.CharField(_("name"), max_length=64)
    work_center = models.ForeignKey(
        "mes.WorkCenter", on_delete=models.PROTECT, related_name="terminals"
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    enrolled_at = models.DateTimeField(_("enrolled at"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["work_center__code", "name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.work_center.code})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class SignInThrottle(models.Model):
    """Sign-in attempts per badge and per terminal in the current lockout window (which
    started at ``last_at``). An attempt is counted *before* its PIN is checked, by one
    conditional UPDATE, so that parallel guesses from any number of server processes cannot
    exceed the limit."""

    key = models.CharField(max_length=100, primary_key=True)
    attempts = models.PositiveIntegerField(default=0)
    last_at = models.DateTimeField(default=timezone.now, db_index=True)  # the window's start

    def __str__(self) -> str:
        return f"{self.key}: {self.attempts}"


class FormToken(models.Model):
    """A one-time token per rendered action form: a retried submission (flaky network, a
    double tap) finds its token used and is answered with the first outcome, not applied
    twice."""

    token = models.CharField(max_length=64, primary_key=True)
    used_at = models.DateTimeField(default=timezone.now, db_index=True)
    outcome = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.token
