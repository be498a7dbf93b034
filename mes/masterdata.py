"""Idempotent create-or-update of master data by code (the ERP/integrator API's PUTs).

Each function returns ``(instance, created, changed)``: the same input twice gives
``changed=False`` the second time and writes nothing. References are by code; an unknown
one raises :class:`~mes.errors.UnknownReference` (``unknown_<kind>``).
"""

from __future__ import annotations

import zoneinfo
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, models, transaction

from .errors import Conflict, UnknownReference, ValidationFailed
from .models import Area, Machine, Product, Routing, RoutingStep, Site, WorkCenter
from .quality.models import InspectionCharacteristic
from .quality.plans import PLAN_FIELDS, step_plan, validate_plan
from .services import activate_routing

CHECK_DEFAULTS = {
    "nominal": None,
    "lower_limit": None,
    "upper_limit": None,
    "unit": "",
    "decimals": 2,
    "defect_codes": [],
    "sample_size": 1,
    "first_piece": True,
    "every_n": None,
    "every_minutes": None,
    "last_piece": False,
    "mandatory": True,
    "reaction": "hold_operation",
}

Result = tuple[Any, bool, bool]


def _resolve(model: type[models.Model], kind: str, code: str, field: str | None = None):
    obj = model.objects.filter(code=code).first()
    if obj is None:
        raise UnknownReference(kind, code, field=field or kind)
    return obj


def _upsert(model: type[models.Model], code: str, values: dict[str, Any]) -> Result:
    """Create ``code`` with ``values`` or update the fields that differ, under a row lock.
    A concurrent create of the same code loses the insert race and updates instead."""
    for attempt in range(2):
        try:
            with transaction.atomic():
                obj = model.objects.select_for_update().filter(code=code).first()
                if obj is None:
                    return model.objects.create(code=code, **values), True, True
                changed = [name for name, value in values.items() if getattr(obj, name) != value]
                for name in changed:
                    setattr(obj, name, values[name])
                if changed:
                    obj.save(update_fields=changed)
                return obj, False, bool(changed)
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


def upsert_site(code: str, *, name: str, time_zone: str) -> Result:
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed.field("time_zone", f"{time_zone!r} is not an IANA zone.") from None
    return _upsert(Site, code, {"name": name, "time_zone": time_zone})


def upsert_area(code: str, *, name: str, site: str) -> Result:
    return _upsert(Area, code, {"name": name, "site": _resolve(Site, "site", site)})


def upsert_work_center(code: str, *, name: str, area: str) -> Result:
    return _upsert(WorkCenter, code, {"name": name, "area": _resolve(Area, "area", area)})


def upsert_product(code: str, *, name: str, unit: str) -> Result:
    return _upsert(Product, code, {"name": name, "unit": unit})


def upsert_machine(code: str, *, name: str, work_center: str) -> Result:
    wc = _resolve(WorkCenter, "work_center", work_center)
    return _upsert(Machine, code, {"name": name, "work_center": wc})


def _step_values(steps: list[dict]) -> list[dict]:
    sequences = [step["sequence"] for step in steps]
    if len(set(sequences)) != len(sequences):
        raise ValidationFailed.field("steps", "Step sequences must be unique.")
    centers = {
        wc.code: wc
        for wc in WorkCenter.objects.filter(code__in={step["work_center"] for step in steps})
    }
    values = []
    # Errors name the step by its index in the request, not its place after sorting.
    for index, step in sorted(enumerate(steps), key=lambda pair: pair[1]["sequence"]):
        wc = centers.get(step["work_center"])
        if wc is None:
            raise UnknownReference(
                "work_center", step["work_center"], field=f"steps.{index}.work_center"
            )
        values.append(
            {
                "sequence": step["sequence"],
                "name": step["name"],
                "work_center": wc,
                "setup_seconds": step.get("setup_seconds", 0),
                "cycle_seconds": Decimal(str(step.get("cycle_seconds", 0))),
                "instructions": step.get("instructions", ""),
            }
        )
    return values


def _plan_values(steps: list[dict]) -> dict[int, list[dict] | None]:
    """Each step's inspection plan as given (None where ``checks`` is left out)."""
    plans: dict[int, list[dict] | None] = {}
    for index, step in enumerate(steps):
        checks = step.get("checks")
        if checks is None:
            plans[step["sequence"]] = None
            continue
        codes = [c["code"] for c in checks]
        if len(set(codes)) != len(codes):
            raise ValidationFailed.field(
                f"steps.{index}.checks", "Characteristic codes must be unique within a step."
            )
        plan = []
        for position, check in enumerate(checks):
            values = {**CHECK_DEFAULTS, **check, "position": position}
            values["defect_codes"] = list(values.get("defect_codes") or [])
            validate_plan(values, f"steps.{index}.checks.{position}")
            plan.append({name: values[name] for name in PLAN_FIELDS})
        plans[step["sequence"]] = plan
    return plans


def upsert_routing(code: str, *, product: str, active: bool, steps: list[dict]) -> Result:
    """Steps are replaced as a whole; operations already released keep their copies, so a
    routing can change while orders using it are on the floor."""
    prod = _resolve(Product, "product", product)
    wanted = _step_values(steps)
    wanted_plans = _plan_values(steps)
    with transaction.atomic():
        routing = Routing.objects.select_for_update().filter(code=code).first()
        created = routing is None
        changed = created
        if created:
            last = Routing.objects.filter(product=prod).aggregate(v=models.Max("version"))["v"]
            routing = Routing.objects.create(code=code, product=prod, version=(last or 0) + 1)
        elif routing.product_id != prod.pk:
            if routing.work_orders.exists():
                raise Conflict(
                    f"Routing {code} is used by work orders; it cannot move to another product.",
                    errors={"product": ["Routing in use."]},
                )
            last = Routing.objects.filter(product=prod).aggregate(v=models.Max("version"))["v"]
            routing.product, routing.version, routing.active = prod, (last or 0) + 1, False
            routing.save(update_fields=["product", "version", "active"])
            changed = True
        existing = list(routing.steps.select_related("work_center").prefetch_related("checks"))
        current = [
            {
                "sequence": s.sequence,
                "name": s.name,
                "work_center": s.work_center,
                "setup_seconds": s.setup_seconds,
                "cycle_seconds": s.cycle_seconds,
                "instructions": s.instructions,
            }
            for s in sorted(existing, key=lambda step: step.sequence)
        ]
        # A step that leaves out ``checks`` keeps its inspection plan: nothing is lost by
        # omission; ``"checks": []`` removes it.
        plans_now = {s.sequence: step_plan(s) for s in existing}
        plans_wanted = {
            seq: plan if plan is not None else plans_now.get(seq, [])
            for seq, plan in wanted_plans.items()
        }
        if current != wanted or plans_now != plans_wanted:
            routing.steps.all().delete()
            steps = RoutingStep.objects.bulk_create(
                [RoutingStep(routing=routing, **v) for v in wanted]
            )
            InspectionCharacteristic.objects.bulk_create(
                [
                    InspectionCharacteristic(step=step, **plan)
                    for step in steps
                    for plan in plans_wanted[step.sequence]
                ]
            )
            changed = True
        if active and not routing.active:
            activate_routing(routing)
            changed = True
        elif not active and routing.active:
            routing.active = False
            routing.save(update_fields=["active"])
            changed = True
        return routing, created, changed
