"""Machine connectivity: PLC connections and device profiles (configuration), the poller's
per-machine link status and counter state, machine state events, downtime records with
their reason tree, and counts that could not be booked on an operation.

Written only by ``shopfloor.plc.services`` and ``shopfloor.downtime`` (the admin calls
those too); the reason tree is configured in the admin.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from mes.choices import MachineState
from mes.models import Machine, Operation, code_field

from .choices import DECLARED_CAUSES, DowntimeCause


class DeviceProfile(models.Model):
    """A register map that identical machines share: fifty presses of one model point at
    one profile, and changing it changes all of them."""

    code = code_field()
    name = models.CharField(_("name"), max_length=200)
    # The contract's ``registers`` object, canonical (see shopfloor.plc.registers).
    register_map = models.JSONField(_("register map"))
    notes = models.TextField(_("notes"), blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("device profile")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class MachineConnection(models.Model):
    """How the poller reaches a machine's PLC (Modbus TCP) and reads it."""

    machine = models.OneToOneField(
        Machine, on_delete=models.CASCADE, related_name="plc_connection", verbose_name=_("machine")
    )
    host = models.CharField(_("host"), max_length=253)
    port = models.PositiveIntegerField(_("port"), default=502)
    unit_id = models.PositiveSmallIntegerField(_("unit id"), default=1)
    poll_interval_ms = models.PositiveIntegerField(_("poll interval (ms)"), default=1000)
    timeout_ms = models.PositiveIntegerField(_("timeout (ms)"), default=500)
    profile = models.ForeignKey(
        DeviceProfile,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="connections",
        verbose_name=_("device profile"),
    )
    # The machine's own map, used when it has no profile.
    register_map = models.JSONField(_("register map"), null=True, blank=True)
    group = models.CharField(_("poll group"), max_length=32, default="default", db_index=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["machine__code"]
        verbose_name = _("PLC connection")

    def __str__(self) -> str:
        return f"{self.machine.code} → {self.host}:{self.port}/{self.unit_id}"

    def effective_register_map(self) -> dict[str, Any] | None:
        return self.profile.register_map if self.profile_id else self.register_map


class PlcStatus(models.Model):
    """The poller's memory of a machine's PLC, one row per machine: the last raw counter values
    already turned into quantities (so that a restarted worker never counts a part twice),
    quantities not yet booked on an operation, and the link's health.

    Kept when the connection is removed, so that pending quantities are still booked."""

    machine = models.OneToOneField(
        Machine, on_delete=models.CASCADE, primary_key=True, related_name="plc_status"
    )
    # Bumped by every write of the raw values: the poller writes only over the version it
    # read (compare and set), so two pollers or a reconfiguration never double count.
    version = models.PositiveIntegerField(default=0)
    good_raw = models.BigIntegerField(_("good counter (raw)"), null=True, blank=True)
    scrap_raw = models.BigIntegerField(_("scrap counter (raw)"), null=True, blank=True)
    pending_good = models.BigIntegerField(_("good not yet booked"), default=0)
    pending_scrap = models.BigIntegerField(_("scrap not yet booked"), default=0)
    last_read_at = models.DateTimeField(_("last read"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(_("failed polls in a row"), default=0)
    error_count = models.BigIntegerField(_("errors"), default=0)

    class Meta:
        ordering = ["machine__code"]
        verbose_name = _("PLC status")
        verbose_name_plural = _("PLC status")

    def __str__(self) -> str:
        return f"{self.machine.code} PLC status"


class MachineStateEvent(models.Model):
    """A state change: the machine is in ``state`` from ``started_at`` (the read that saw it)
    until its next event. Append-only, so a busy poller only ever inserts; the current state
    and since-when are on the machine itself (``Machine.state``, ``state_since``)."""

    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="state_events")
    state = models.CharField(_("state"), max_length=16, choices=MachineState.choices)
    started_at = models.DateTimeField(_("started"))
    source = models.CharField(_("source"), max_length=80)
    reason = models.CharField(_("reason"), max_length=200, blank=True)

    class Meta:
        ordering = ["machine", "started_at", "id"]
        verbose_name = _("machine state event")
        indexes = [models.Index(fields=["machine", "started_at"], name="state_event_machine_time")]

    def __str__(self) -> str:
        return f"{self.machine_id} {self.state} from {self.started_at:%Y-%m-%d %H:%M:%S}"


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


class DowntimeRecord(models.Model):
    """A stop: the machine went down, or stood idle beyond the threshold, while an operation
    was running; or a person declared it down or blocked (with or without a running
    operation: a declaration is the machine's open record of cause ``manual`` or
    ``blocked``). The operator terminal asks for a reason; it closes when the machine runs
    (or, declared, when it is declared up or its PLC reports another state)."""

    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="downtimes")
    operation = models.ForeignKey(
        Operation, on_delete=models.SET_NULL, null=True, blank=True, related_name="downtimes"
    )
    cause = models.CharField(_("cause"), max_length=8, choices=DowntimeCause.choices)
    started_at = models.DateTimeField(_("started"))
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    # The pick from the reason tree (for analysis: planned or not, by category), and the
    # words as they were given (the tree's names may change later; this text does not).
    reason_choice = models.ForeignKey(
        DowntimeReason,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="downtimes",
        verbose_name=_("reason from the tree"),
        limit_choices_to={"parent__isnull": False},
    )
    reason = models.TextField(_("reason"), blank=True)
    reason_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason_at = models.DateTimeField(_("reason given"), null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("downtime")
        indexes = [models.Index(fields=["machine", "started_at"], name="downtime_machine_time")]
        constraints = [
            models.UniqueConstraint(
                fields=["machine"], condition=Q(ended_at__isnull=True), name="downtime_one_open"
            )
        ]

    def __str__(self) -> str:
        return f"{self.machine_id} {self.cause} from {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def is_declared(self) -> bool:
        """Declared down or blocked by a person (see :mod:`shopfloor.downtime`)."""
        return self.cause in DECLARED_CAUSES

    @property
    def note(self) -> str:
        """The words given beside the pick from the tree (the whole reason without one)."""
        if self.reason_choice_id is None:
            return self.reason
        return self.reason.partition("): ")[2]

    @property
    def declared_by(self) -> str:
        user = self.reason_by
        return (user.get_full_name() or user.get_username()) if user is not None else ""


class UnassignedCount(models.Model):
    """Parts a PLC counted that no operation could take (none running on the machine, or the
    booking was refused). One open row per machine collects them until someone closes it."""

    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="unassigned_counts")
    good = models.BigIntegerField(_("good"), default=0)
    scrap = models.BigIntegerField(_("scrap"), default=0)
    first_at = models.DateTimeField(_("first counted"))
    last_at = models.DateTimeField(_("last counted"))
    note = models.CharField(_("why"), max_length=300, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)

    class Meta:
        ordering = ["-last_at", "-id"]
        verbose_name = _("unassigned count")
        constraints = [
            models.UniqueConstraint(
                fields=["machine"], condition=Q(closed_at__isnull=True), name="unassigned_one_open"
            )
        ]

    def __str__(self) -> str:
        return f"{self.machine_id}: {self.good} good, {self.scrap} scrap unassigned"


class PollGroupState(models.Model):
    """A poll group's running totals, for the metrics: how long its last beat's cycles took
    and how many reads failed (one row per group, written once per beat)."""

    group = models.CharField(max_length=32, primary_key=True)
    cycles = models.BigIntegerField(default=0)
    reads_failed = models.BigIntegerField(default=0)
    last_cycle_seconds = models.FloatField(default=0.0)
    last_beat_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"poll group {self.group}"
