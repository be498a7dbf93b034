"""Operator terminal: downtime reason tree, sign-in failures, and one-time form tokens."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class DowntimeReason(models.Model):
    """A two-level, configurable tree: a category (no parent) and its reasons."""

    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    planned = models.BooleanField(_("planned"), default=False)
    active = models.BooleanField(_("active"), default=True)
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["position", "name"]
        verbose_name = _("downtime reason")

    def __str__(self) -> str:
        return f"{self.parent.name} > {self.name}" if self.parent_id else self.name

    @property
    def path(self) -> str:
        return str(self)


class SignInFailure(models.Model):
    """Failed badge/PIN attempts, to limit guessing (kept in the database so that every
    server process counts the same)."""

    badge = models.CharField(max_length=32, db_index=True)
    terminal = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.badge} at {self.at:%H:%M:%S}"


class FormToken(models.Model):
    """A one-time token per rendered action form: a retried submission (flaky network, a
    double tap) finds its token used and is answered with the first outcome, not applied
    twice."""

    token = models.CharField(max_length=64, primary_key=True)
    used_at = models.DateTimeField(default=timezone.now, db_index=True)
    outcome = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.token
