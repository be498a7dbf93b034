"""Inspection plans travel with the work: copied from the routing steps into the
operations at release, like the steps themselves."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Model

from mes.errors import ValidationFailed
from mes.models import Operation, Routing, RoutingStep

from .choices import CheckKind
from .models import CharacteristicFields, InspectionCharacteristic, OperationCheck

PLAN_FIELDS = [
    f.name
    for f in CharacteristicFields._meta.get_fields()
    if f.concrete and not f.primary_key and f.name != "id"
]


def series_key(routing_code: str, step_sequence: int, code: str) -> str:
    """One characteristic across all operations of its routing step."""
    return f"{routing_code}/{step_sequence}/{code}"


def plan_values(characteristic: Model) -> dict:
    return {name: getattr(characteristic, name) for name in PLAN_FIELDS}


def copy_checks(routing: Routing, operations: Iterable[Operation]) -> list[OperationCheck]:
    """Copy the routing's inspection plans into its released operations (by sequence)."""
    by_sequence = {op.sequence: op for op in operations}
    checks = [
        OperationCheck(
            operation=by_sequence[c.step.sequence],
            series=series_key(routing.code, c.step.sequence, c.code),
            **plan_values(c),
        )
        for c in InspectionCharacteristic.objects.filter(step__routing=routing).select_related(
            "step"
        )
        if c.step.sequence in by_sequence
    ]
    return OperationCheck.objects.bulk_create(checks)


def step_plan(step: RoutingStep) -> list[dict]:
    return [plan_values(c) for c in step.checks.all()]


def validate_plan(values: dict, field: str = "") -> dict:
    """Check one characteristic's values (as the admin and the API give them); raise
    ValidationFailed naming ``field`` (e.g. ``steps.0.checks.1``)."""
    errors: dict[str, list[str]] = {}

    def refuse(name: str, message: str) -> None:
        errors.setdefault(f"{field}.{name}" if field else name, []).append(message)

    lower, upper = values.get("lower_limit"), values.get("upper_limit")
    if values.get("kind") == CheckKind.VARIABLE:
        if lower is None and upper is None:
            refuse("upper_limit", "A measured characteristic needs at least one spec limit.")
        if lower is not None and upper is not None and lower > upper:
            refuse("lower_limit", "The lower limit is above the upper limit.")
    elif values.get("kind") == CheckKind.ATTRIBUTE:
        if lower is not None or upper is not None or values.get("nominal") is not None:
            refuse("kind", "A pass/fail characteristic has no nominal or limits.")
        if values.get("sample_size", 1) != 1:
            refuse("sample_size", "A pass/fail characteristic takes one verdict per sample.")
    codes = values.get("defect_codes") or []
    if not isinstance(codes, list) or not all(isinstance(c, str) and c.strip() for c in codes):
        refuse("defect_codes", "Defect codes are a list of non-empty texts.")
    if not (
        values.get("first_piece")
        or values.get("every_n")
        or values.get("every_minutes")
        or values.get("last_piece")
    ):
        refuse("first_piece", "Choose when the check is due (first piece, every N, every T, last).")
    if errors:
        raise ValidationFailed("The inspection plan is not valid.", errors=errors)
    return values
