"""Status vocabularies of the production domain, with labels for people."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class WorkOrderStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    RELEASED = "released", _("Released")
    IN_PROGRESS = "in_progress", _("In progress")
    ON_HOLD = "on_hold", _("On hold")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


class OperationStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    READY = "ready", _("Ready")
    RUNNING = "running", _("Running")
    PAUSED = "paused", _("Paused")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


class Priority(models.TextChoices):
    NORMAL = "normal", _("Normal")
    RUSH = "rush", _("Rush")


class MachineState(models.TextChoices):
    RUNNING = "running", _("Running")
    IDLE = "idle", _("Idle")
    DOWN = "down", _("Down")
    SETUP = "setup", _("Setup")
    OFFLINE = "offline", _("Offline")
    UNKNOWN = "unknown", _("Unknown")


class EntityType(models.TextChoices):
    WORK_ORDER = "work_order", _("Work order")
    OPERATION = "operation", _("Operation")
    MACHINE = "machine", _("Machine")
    QUALITY_RESULT = "quality_result", _("Quality result")
    NONCONFORMANCE = "nonconformance", _("Nonconformance")
    CHARACTERISTIC = "characteristic", _("Characteristic")
    TERMINAL = "terminal", _("Terminal")


class ActorKind(models.TextChoices):
    """Who wrote an audit record: a signed-in person, a system (the scheduler, the ERP's API
    client) or a machine's PLC (the system actor ``plc:<machine code>``)."""

    USER = "user", _("Person")
    SYSTEM = "system", _("System")
    PLC = "plc", _("PLC")


class Role(models.TextChoices):
    """Django auth groups; data migration 0002 creates them."""

    OPERATOR = "operator", _("Operator")
    SUPERVISOR = "supervisor", _("Supervisor")
    PLANNER = "planner", _("Planner")
    ADMIN = "admin", _("Admin")


# The audit records' actions as participles, for messages ("... cannot be released", "... was
# completed by Ana at 10:42") and histories. Translated: refusals and histories are read by
# people, in the request's language.
PAST_TENSE = {
    "create": _("created"),
    "update": _("updated"),
    "release": _("released"),
    "hold": _("put on hold"),
    "cancel": _("cancelled"),
    "ready": _("made ready"),
    "start": _("started"),
    "pause": _("paused"),
    "resume": _("resumed"),
    "complete": _("completed"),
    "report_quantity": _("given a quantity report"),
    "set_state": _("changed"),
    "count": _("counted"),
    "downtime_reason": _("given a downtime reason"),
    "declare_down": _("declared down"),
    "declare_blocked": _("declared blocked"),
    "declare_up": _("declared back up"),
    "reschedule": _("rescheduled"),
    "record_check": _("given a check result"),
    "correct_check": _("given a corrected check result"),
    "open": _("opened"),
    "disposition": _("dispositioned"),
    "freeze_limits": _("given frozen control limits"),
    "release_limits": _("given limits from the data again"),
    "enrol": _("enrolled"),
    "revoke": _("revoked"),
}
