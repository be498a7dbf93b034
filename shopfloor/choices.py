"""Vocabularies of the shop floor, with labels for people."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class DowntimeCause(models.TextChoices):
    DOWN = "down", _("Machine down")
    IDLE = "idle", _("Idle too long")
