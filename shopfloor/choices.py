"""Vocabularies of the shop floor, with labels for people."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class DowntimeCause(models.TextChoices):
    DOWN = "down", _("Machine down")
    IDLE = "idle", _("Idle too long")
    MANUAL = "manual", _("Declared down")
    BLOCKED = "blocked", _("Declared blocked")


class DeclaredKind(models.TextChoices):
    """What a person declares a machine: down (broken, in maintenance) or blocked (sound,
    but cannot work: no material, no operator, waiting for a release)."""

    DOWN = "down", _("Down")
    BLOCKED = "blocked", _("Blocked")


# A declaration is an open downtime record of one of these causes.
DECLARED_CAUSE = {
    DeclaredKind.DOWN: DowntimeCause.MANUAL,
    DeclaredKind.BLOCKED: DowntimeCause.BLOCKED,
}
DECLARED_CAUSES = frozenset(DECLARED_CAUSE.values())
# The audit action of each declaration, and of the way back.
DECLARE_ACTION = {DeclaredKind.DOWN: "declare_down", DeclaredKind.BLOCKED: "declare_blocked"}
DECLARE_UP_ACTION = "declare_up"
# The PLC poller acts as the system actor ``plc:<machine code>`` (state events' source).
PLC_ACTOR_PREFIX = "plc:"
