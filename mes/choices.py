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


class Role(models.TextChoices):
    """Django auth groups; data migration 0002 creates them."""

    OPERATOR = "operator", _("Operator")
    SUPERVISOR = "supervisor", _("Supervisor")
    PLANNER = "planner", _("Planner")
    ADMIN = "admin", _("Admin")
