"""Operator terminal: sign-in failures and one-time form tokens (the downtime reason tree
the terminal asks from is :class:`shopfloor.models.DowntimeReason`)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


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
