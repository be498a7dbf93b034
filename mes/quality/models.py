"""Quality records: inspection plans (characteristics on routing steps, copied into
operations at release), results, nonconformances with their signatures, SPC baselines
and scrap reasons.

Written only by :mod:`mes.quality.services`. Results never change once written: a
correction is a new version, and the one it replaces stays visible.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mes.models import CODE_VALIDATOR, QUANTITY, Machine, Operation, RoutingStep, WorkOrder

from .choices import (
    CheckKind,
    Disposition,
    NonconformanceStatus,
    Reaction,
    ScrapCategory,
    SignatureMeaning,
    Verdict,
)

SPEC = {"max_digits": 18, "decimal_places": 6, "null": True, "blank": True}


class CharacteristicFields(models.Model):
    """What a check measures, how often and what happens when it is out of spec: the
    master record on a routing step and its copy on an operation share these fields."""

    code = models.CharField(_("code"), max_length=64, validators=[CODE_VALIDATOR])
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=16, choices=CheckKind.choices)
    position = models.PositiveIntegerField(_("position"), default=0)
    nominal = models.DecimalField(_("nominal"), **SPEC)
    lower_limit = models.DecimalField(_("lower spec limit"), **SPEC)
    upper_limit = models.DecimalField(_("upper spec limit"), **SPEC)
    unit = models.CharField(_("unit"), max_length=16, blank=True)
    decimals = models.PositiveSmallIntegerField(
        _("decimals"), default=2, validators=[MaxValueValidator(6)]
    )
    defect_codes = models.JSONField(_("defect codes"), default=list, blank=True)
    sample_size = models.PositiveSmallIntegerField(
        _("values per sample"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
    )
    first_piece = models.BooleanField(_("first piece"), default=True)
    every_n = models.PositiveIntegerField(
        _("every N good units"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    every_minutes = models.PositiveIntegerField(
        _("every T minutes of running time"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
    )
    last_piece = models.BooleanField(_("last piece"), default=False)
    mandatory = models.BooleanField(_("mandatory"), default=True)
    reaction = models.CharField(
        _("reaction when out of spec"),
        max_length=16,
        choices=Reaction.choices,
        default=Reaction.HOLD_OPERATION,
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_variable(self) -> bool:
        return self.kind == CheckKind.VARIABLE


class InspectionCharacteristic(CharacteristicFields):
    """A characteristic of a routing step's inspection plan (master data)."""

    step = models.ForeignKey(RoutingStep, on_delete=models.CASCADE, related_name="checks")

    class Meta:
        ordering = ["step", "position", "code"]
        verbose_name = _("inspection characteristic")
        constraints = [
            models.UniqueConstraint(fields=["step", "code"], name="characteristic_unique"),
        ]

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from mes.errors import ValidationFailed

        from .plans import plan_values, validate_plan

        try:
            validate_plan(plan_values(self))
        except ValidationFailed as exc:
            raise ValidationError(dict(exc.errors)) from None


class OperationCheck(CharacteristicFields):
    """The characteristic as copied into an operation at release. ``series`` names the
    characteristic across all operations of its routing step (routing code / step
    sequence / characteristic code): SPC charts a series."""

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="checks")
    series = models.CharField(max_length=150, db_index=True)

    class Meta:
        ordering = ["operation", "position", "code"]
        verbose_name = _("operation check")
        constraints = [
            models.UniqueConstraint(fields=["operation", "code"], name="operation_check_unique"),
        ]


class InspectionResult(models.Model):
    """One sample of one check: the values exactly as entered (decimal text), who, where
    and when (server time). ``seq`` is gap-free in commit order (the API's feed)."""

    seq = models.BigIntegerField(unique=True)
    characteristic = models.ForeignKey(
        OperationCheck, on_delete=models.PROTECT, related_name="results"
    )
    series = models.CharField(max_length=150)
    operation = models.ForeignKey(Operation, on_delete=models.PROTECT, related_name="+")
    work_order = models.ForeignKey(WorkOrder, on_delete=models.PROTECT, related_name="+")
    machine = models.ForeignKey(
        Machine, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    sample_key = models.CharField(max_length=32)
    sample_label = models.CharField(_("sample"), max_length=64)
    values = models.JSONField(_("values"))
    defect_code = models.CharField(_("defect"), max_length=64, blank=True)
    verdict = models.CharField(_("verdict"), max_length=8, choices=Verdict.choices)
    version = models.PositiveIntegerField(_("version"), default=1)
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    is_current = models.BooleanField(default=True)
    correction_reason = models.TextField(_("correction reason"), blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recorded_by_name = models.CharField(_("recorded by"), max_length=150)
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(
                fields=["series", "-seq"], condition=Q(is_current=True), name="result_series"
            ),
            models.Index(fields=["characteristic", "sample_key"], name="result_sample"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.series} {self.sample_label} v{self.version}"

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if self.pk is not None and set(update_fields or ()) != {"is_current"}:
            raise TypeError("Results never change: record a correction instead.")
        super().save(*args, **kwargs)


class Nonconformance(models.Model):
    """Opened by an out-of-spec result; closed only by a signed disposition."""

    number = models.CharField(_("number"), max_length=16, unique=True)
    status = models.CharField(
        _("status"),
        max_length=8,
        choices=NonconformanceStatus.choices,
        default=NonconformanceStatus.OPEN,
    )
    result = models.ForeignKey(
        InspectionResult, on_delete=models.PROTECT, related_name="nonconformances"
    )
    characteristic = models.ForeignKey(OperationCheck, on_delete=models.PROTECT, related_name="+")
    operation = models.ForeignKey(Operation, on_delete=models.PROTECT, related_name="+")
    work_order = models.ForeignKey(
        WorkOrder, on_delete=models.PROTECT, related_name="nonconformances"
    )
    reaction = models.CharField(_("reaction"), max_length=16, choices=Reaction.choices)
    description = models.TextField(_("description"))
    opened_at = models.DateTimeField(_("opened"))
    opened_by_name = models.CharField(_("opened by"), max_length=150)
    disposition = models.CharField(
        _("disposition"), max_length=16, choices=Disposition.choices, blank=True
    )
    disposition_quantity = models.DecimalField(_("quantity"), **QUANTITY, null=True, blank=True)
    rework_operation = models.ForeignKey(
        Operation, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    disposition_comment = models.TextField(_("comment"), blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    closed_by_name = models.CharField(_("closed by"), max_length=150, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [models.Index(fields=["status", "opened_at"], name="nc_status")]

    def __str__(self) -> str:
        return self.number


class Signature(models.Model):
    """An electronic signature (21 CFR Part 11): who, when, what it means, and a hash of
    the record as signed. When the record changes later, the hash no longer matches and
    the signature shows as invalid."""

    nonconformance = models.ForeignKey(
        Nonconformance, on_delete=models.PROTECT, related_name="signatures"
    )
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signer_name = models.CharField(_("signed by"), max_length=150)
    meaning = models.CharField(_("meaning"), max_length=16, choices=SignatureMeaning.choices)
    comment = models.TextField(_("comment"), blank=True)
    signed_at = models.DateTimeField(_("signed at"))
    record_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["signed_at", "id"]

    def __str__(self) -> str:
        return f"{self.signer_name} {self.get_meaning_display()} {self.signed_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Signatures never change once written.")
        super().save(*args, **kwargs)


class SpcBaseline(models.Model):
    """Control limits frozen by a supervisor for a series; charts use them instead of
    limits computed from the data until the baseline is released."""

    series = models.CharField(max_length=150, unique=True)
    limits = models.JSONField()
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    frozen_at = models.DateTimeField()
    frozen_by_name = models.CharField(max_length=150)

    def __str__(self) -> str:
        return f"{self.series} frozen {self.frozen_at:%Y-%m-%d}"


class ScrapReason(models.Model):
    code = models.CharField(_("code"), max_length=64, unique=True, validators=[CODE_VALIDATOR])
    text = models.CharField(_("text"), max_length=200)
    category = models.CharField(
        _("category"), max_length=16, choices=ScrapCategory.choices, default=ScrapCategory.OTHER
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["position", "code"]
        verbose_name = _("scrap reason")

    def __str__(self) -> str:
        return f"{self.code} {self.text}"
