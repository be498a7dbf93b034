"""Production domain: the ISA-95 equipment hierarchy, products and routings, work orders,
operations, operators and the append-only audit trail.

State fields (``status``, quantities, actual times, machine ``state``) are written only by
``mes.services``; models hold data and derived read-only properties.
"""

from __future__ import annotations

import uuid
import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .choices import EntityType, MachineState, OperationStatus, Priority, WorkOrderStatus

CODE_VALIDATOR = RegexValidator(
    r"\A[A-Za-z0-9._-]{1,64}\Z", _("Use 1-64 letters, digits, dots, underscores or hyphens.")
)
QUANTITY = {"max_digits": 14, "decimal_places": 3}


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            _("%(zone)s is not an IANA time zone (such as Europe/Berlin).") % {"zone": value}
        ) from None


def code_field(**kwargs) -> models.CharField:
    return models.CharField(
        _("code"), max_length=64, unique=True, validators=[CODE_VALIDATOR], **kwargs
    )


# --- Equipment hierarchy (ISA-95) ------------------------------------------------------------


class Site(models.Model):
    code = code_field()
    name = models.CharField(_("name"), max_length=200)
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text=_("An IANA zone name, such as Europe/Berlin: shifts are in this zone."),
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Area(models.Model):
    code = code_field()
    name = models.CharField(_("name"), max_length=200)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="areas")

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class WorkCenter(models.Model):
    code = code_field()
    name = models.CharField(_("name"), max_length=200)
    area = models.ForeignKey(Area, on_delete=models.PROTECT, related_name="work_centers")

    class Meta:
        ordering = ["code"]
        verbose_name = _("work center")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Machine(models.Model):
    code = code_field()
    name = models.CharField(_("name"), max_length=200)
    work_center = models.ForeignKey(WorkCenter, on_delete=models.PROTECT, related_name="machines")
    is_active = models.BooleanField(_("active"), default=True)
    state = models.CharField(
        _("state"), max_length=16, choices=MachineState.choices, default=MachineState.UNKNOWN
    )
    state_since = models.DateTimeField(_("state since"), default=timezone.now)
    # When a machine declared down or blocked by hand is expected back (the live schedule
    # plans it from then); cleared by the next state change.
    expected_back_at = models.DateTimeField(_("expected back"), null=True, blank=True)
    # When its current stop (idle or down, in a row) began; None while it is not stopped.
    # The performance rollups tell short stops from long ones by it.
    stopped_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


# --- Products and routings -------------------------------------------------------------------


class Product(models.Model):
    code = code_field()
    name = models.CharField(_("name"), max_length=200)
    unit = models.CharField(_("unit"), max_length=16, default="pcs")

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Routing(models.Model):
    """A versioned sequence of steps that makes a product. One active routing per product."""

    code = code_field()
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="routings")
    version = models.PositiveIntegerField(_("version"), default=1)
    active = models.BooleanField(_("active"), default=False)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        ordering = ["product__code", "version"]
        constraints = [
            models.UniqueConstraint(fields=["product", "version"], name="routing_version_unique"),
            models.UniqueConstraint(
                fields=["product"], condition=Q(active=True), name="routing_one_active_per_product"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} (v{self.version})"


class RoutingStep(models.Model):
    routing = models.ForeignKey(Routing, on_delete=models.CASCADE, related_name="steps")
    sequence = models.PositiveIntegerField(_("sequence"))
    name = models.CharField(_("name"), max_length=200)
    work_center = models.ForeignKey(WorkCenter, on_delete=models.PROTECT, related_name="+")
    setup_seconds = models.PositiveIntegerField(_("setup seconds"), default=0)
    cycle_seconds = models.DecimalField(
        _("cycle seconds per unit"),
        max_digits=10,
        decimal_places=3,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
    )
    instructions = models.TextField(_("work instructions"), blank=True)

    class Meta:
        ordering = ["routing", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["routing", "sequence"], name="routing_step_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.sequence} {self.name}"


# --- Work orders and operations --------------------------------------------------------------


class WorkOrder(models.Model):
    number = code_field()
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="work_orders")
    routing = models.ForeignKey(Routing, on_delete=models.PROTECT, related_name="work_orders")
    quantity = models.DecimalField(
        _("quantity"), **QUANTITY, validators=[MinValueValidator(Decimal("0.001"))]
    )
    due_date = models.DateTimeField(_("due date"))
    priority = models.CharField(
        _("priority"), max_length=8, choices=Priority.choices, default=Priority.NORMAL
    )
    notes = models.TextField(_("notes"), blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=WorkOrderStatus.choices, default=WorkOrderStatus.PLANNED
    )
    # The status a hold interrupted, so that releasing the hold goes back to it.
    held_from_status = models.CharField(max_length=16, blank=True, editable=False)
    quantity_good = models.DecimalField(_("good"), **QUANTITY, default=Decimal(0))
    quantity_scrap = models.DecimalField(_("scrap"), **QUANTITY, default=Decimal(0))
    actual_start = models.DateTimeField(_("actual start"), null=True, blank=True)
    actual_end = models.DateTimeField(_("actual end"), null=True, blank=True)
    # From the live schedule (mes.scheduling): when the last operation is planned to end,
    # and whether that is after the due date. Null while the order is not scheduled.
    projected_end = models.DateTimeField(_("projected end"), null=True, blank=True)
    at_risk = models.BooleanField(_("at risk"), default=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now, db_index=True)
    # Bumped by every change of the order or one of its operations (ETag, stale-edit checks).
    version = models.PositiveIntegerField(default=1, editable=False)
    # The contract's representation as JSON text, rendered by the services on every change.
    rendered = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["due_date", "number"]
        indexes = [
            models.Index(fields=["status", "due_date"], name="wo_status_due"),
            models.Index(fields=["updated_at", "number"], name="wo_changes_feed"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_late(self) -> bool:
        end = self.actual_end or timezone.now()
        return self.status != WorkOrderStatus.CANCELLED and end > self.due_date

    @property
    def is_rush(self) -> bool:
        return self.priority == Priority.RUSH


class Operation(models.Model):
    """One routing step of one work order, copied at release so later routing edits never
    change work in flight."""

    work_order = models.ForeignKey(WorkOrder, on_delete=models.CASCADE, related_name="operations")
    sequence = models.PositiveIntegerField(_("sequence"))
    name = models.CharField(_("name"), max_length=200)
    work_center = models.ForeignKey(WorkCenter, on_delete=models.PROTECT, related_name="operations")
    machine = models.ForeignKey(
        Machine, on_delete=models.PROTECT, null=True, blank=True, related_name="operations"
    )
    status = models.CharField(
        _("status"), max_length=16, choices=OperationStatus.choices, default=OperationStatus.PENDING
    )
    quantity_good = models.DecimalField(_("good"), **QUANTITY, default=Decimal(0))
    quantity_scrap = models.DecimalField(_("scrap"), **QUANTITY, default=Decimal(0))
    setup_seconds = models.PositiveIntegerField(_("setup seconds"), default=0)
    cycle_seconds = models.DecimalField(
        _("cycle seconds per unit"), max_digits=10, decimal_places=3, default=Decimal(0)
    )
    instructions = models.TextField(_("work instructions"), blank=True)
    planned_start = models.DateTimeField(_("planned start"), null=True, blank=True)
    planned_end = models.DateTimeField(_("planned end"), null=True, blank=True)
    actual_start = models.DateTimeField(_("actual start"), null=True, blank=True)
    actual_end = models.DateTimeField(_("actual end"), null=True, blank=True)
    last_operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Running time: accumulated over finished runs, plus the current run since running_since.
    run_seconds = models.DecimalField(max_digits=14, decimal_places=3, default=Decimal(0))
    running_since = models.DateTimeField(null=True, blank=True)
    # Running time already reported to the ERP in confirmations.
    confirmed_run_seconds = models.DecimalField(max_digits=14, decimal_places=3, default=Decimal(0))
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        ordering = ["work_order", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["work_order", "sequence"], name="operation_unique"),
        ]
        indexes = [models.Index(fields=["work_center", "status"], name="op_wc_status")]

    def __str__(self) -> str:
        return f"{self.work_order.number} op {self.sequence}"

    @property
    def label(self) -> str:
        return f"{self.work_order.number} op {self.sequence}"

    @property
    def standard_seconds(self) -> Decimal:
        return self.setup_seconds + self.cycle_seconds * self.work_order.quantity


# --- Production performance (ISA-95) --------------------------------------------------------


class ConfirmationKind(models.TextChoices):
    PROGRESS = "progress", _("Progress")
    FINAL = "final", _("Final")


class ProductionConfirmation(models.Model):
    """What was produced, as the ERP books it: quantity and time deltas since the previous
    confirmation of the operation. ``seq`` is gap-free and follows commit order (see
    :mod:`mes.clock`); a confirmation never changes once written."""

    seq = models.BigIntegerField(unique=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    work_order = models.ForeignKey(
        WorkOrder, on_delete=models.PROTECT, related_name="confirmations"
    )
    operation = models.ForeignKey(Operation, on_delete=models.PROTECT, related_name="confirmations")
    operation_sequence = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=ConfirmationKind.choices)
    quantity_good = models.DecimalField(**QUANTITY)
    quantity_scrap = models.DecimalField(**QUANTITY)
    labor_seconds = models.DecimalField(max_digits=14, decimal_places=3)
    machine_seconds = models.DecimalField(max_digits=14, decimal_places=3)
    materials = models.JSONField(default=list, blank=True)
    # [{"code": <scrap reason code>, "quantity": <decimal text>}] for the scrap in this delta.
    scrap_reasons = models.JSONField(default=list, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.work_order_id} op {self.operation_sequence} {self.kind}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Confirmations never change once written.")
        super().save(*args, **kwargs)


class ChangeClock(models.Model):
    """Counters taken under a row lock at the end of a transaction, so that their values
    follow commit order: a reader that remembers the last value it saw misses nothing."""

    name = models.CharField(max_length=32, primary_key=True)
    last_time = models.DateTimeField(null=True, blank=True)
    last_value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return self.name


class ScheduleState(models.Model):
    """One row: what the live schedule was last planned from (see mes.scheduling)."""

    audit_watermark = models.BigIntegerField(default=0)  # newest audit record planned with
    capacity_key = models.CharField(max_length=64, blank=True)  # the active machines
    calendar_key = models.CharField(max_length=64, blank=True)  # the shift calendars
    planned_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    # Set while a re-plan runs, so that two workers never plan at once; it runs out by itself
    # when a worker dies in the middle.
    lease_until = models.DateTimeField(null=True, blank=True)
    last_replan_seconds = models.FloatField(null=True, blank=True)  # for the metrics

    def __str__(self) -> str:
        return f"schedule planned at {self.planned_at}"


class Lease(models.Model):
    """A job only one process may do at a time, and who does it until when: a poll group's
    window (``plc:<group>``), sending beat's tasks (``beat:<default queue>``). Taken and
    given back by :mod:`mes.leases` with one conditional UPDATE each; a lease whose holder
    dies runs out by itself and the next taker takes it over."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=200, blank=True)  # host:pid:token of the last taker
    expires_at = models.DateTimeField(null=True, blank=True)  # null: free (given back)
    taken_at = models.DateTimeField(null=True, blank=True)  # when the holder took it
    takeovers = models.BigIntegerField(default=0)  # taken from a holder that ran out (metrics)

    def __str__(self) -> str:
        return f"lease {self.name}"


# --- People ----------------------------------------------------------------------------------


class OperatorProfile(models.Model):
    """Shop-floor identity of a user: badge number and an optional PIN (stored hashed)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="operator_profile"
    )
    badge = models.CharField(
        _("badge"),
        max_length=32,
        unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9-]{1,32}$", _("Letters, digits and hyphens."))],
    )
    pin_hash = models.CharField(max_length=128, blank=True, editable=False)

    class Meta:
        ordering = ["badge"]
        verbose_name = _("operator profile")

    def __str__(self) -> str:
        return f"{self.badge} {self.user.get_full_name() or self.user.get_username()}"

    @property
    def has_pin(self) -> bool:
        return bool(self.pin_hash)


# --- Audit trail -----------------------------------------------------------------------------


class AuditRecordQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Audit records are append-only.")

    def delete(self):
        raise TypeError("Audit records are append-only.")


class AuditRecord(models.Model):
    """Who changed what, when, from which state to which, and why. Never updated or deleted
    (enforced here and, for updates, by a database trigger)."""

    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_name = models.CharField(_("actor"), max_length=150)
    entity_type = models.CharField(_("entity type"), max_length=16, choices=EntityType.choices)
    entity_id = models.BigIntegerField(_("entity id"))
    entity_label = models.CharField(_("entity"), max_length=100)
    work_order = models.ForeignKey(
        WorkOrder, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_records"
    )
    action = models.CharField(_("action"), max_length=32)
    from_state = models.CharField(_("from"), max_length=16, blank=True)
    to_state = models.CharField(_("to"), max_length=16, blank=True)
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    objects = AuditRecordQuerySet.as_manager()

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["entity_type", "entity_id"], name="audit_entity")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.entity_label} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Audit records are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit records are append-only.")

    def change_summary(self) -> str:
        """E.g. "quantity_good: 0 → 8; machine: M-01" for screens."""
        parts = []
        for key, value in self.changes.items():
            if isinstance(value, list) and len(value) == 2:
                parts.append(f"{key}: {value[0]} → {value[1]}")
            elif value is not None:
                parts.append(f"{key}: {value}")
        return "; ".join(parts)
