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
from .services import activate_routing

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


def upsert_routing(code: str, *, product: str, active: bool, steps: list[dict]) -> Result:
    """Steps are replaced as a whole; operations already released keep their copies, so a
    routing can change while orders using it are on the floor."""
    prod = _resolve(Product, "product", product)
    wanted = _step_values(steps)
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
        current = [
            {
                "sequence": s.sequence,
                "name": s.name,
                "work_center": s.work_center,
                "setup_seconds": s.setup_seconds,
                "cycle_seconds": s.cycle_seconds,
                "instructions": s.instructions,
            }
            for s in routing.steps.select_related("work_center").order_by("sequence")
        ]
        if current != wanted:
            routing.steps.all().delete()
            RoutingStep.objects.bulk_create([RoutingStep(routing=routing, **v) for v in wanted])
            changed = True
        if active and not routing.active:
            activate_routing(routing)
            changed = True
        elif not active and routing.active:
            routing.active = False
            routing.save(update_fields=["active"])
            changed = True
        return routing, created, changed
