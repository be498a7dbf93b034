"""Reads for the API: lookups by code and the contract's representations as plain data,
each list in a constant number of queries."""

from __future__ import annotations

from django.db.models import QuerySet

from mes import selectors as mes_selectors
from mes.choices import OperationStatus
from mes.errors import UnknownReference, ValidationFailed
from mes.formats import iso_utc, quantity
from mes.models import (
    CODE_VALIDATOR,
    Area,
    Machine,
    Operation,
    Product,
    ProductionConfirmation,
    Routing,
    Site,
    WorkCenter,
    WorkOrder,
)
from mes.services import confirmation_representation

from .models import ErpEndpoint


def validate_code(field: str, value: str) -> None:
    try:
        CODE_VALIDATOR(value)
    except Exception:
        raise ValidationFailed.field(
            field, "Use 1-64 letters, digits, dots, underscores or hyphens."
        ) from None


def product_by_code(code: str) -> Product:
    product = Product.objects.filter(code=code).first()
    if product is None:
        raise UnknownReference("product", code)
    return product


def routing_by_code(code: str | None) -> Routing | None:
    if code is None:
        return None
    routing = Routing.objects.filter(code=code).first()
    if routing is None:
        raise UnknownReference("routing", code)
    return routing


# --- Work orders ------------------------------------------------------------------------------


RENDERED_FIELDS = ("pk", "number", "version", "updated_at", "rendered")


def work_order(number: str) -> WorkOrder | None:
    return WorkOrder.objects.only(*RENDERED_FIELDS).filter(number=number).first()


def work_order_json(wo: WorkOrder) -> str:
    """The representation as JSON text: stored by the services on every change."""
    return mes_selectors.rendered_work_order(wo)


def work_orders_filtered(query: dict) -> QuerySet[WorkOrder]:
    queryset = WorkOrder.objects.only(*RENDERED_FIELDS)
    if "status" in query:
        queryset = queryset.filter(status=query["status"])
    if "priority" in query:
        queryset = queryset.filter(priority=query["priority"])
    if "product" in query:
        queryset = queryset.filter(product__code=query["product"])
    return queryset


def work_orders_json(rows: list[WorkOrder]) -> str:
    return "[" + ",".join(work_order_json(wo) for wo in rows) + "]"


# --- Confirmations ----------------------------------------------------------------------------


def confirmations_after(after: int, limit: int) -> list[dict]:
    rows = (
        ProductionConfirmation.objects.filter(seq__gt=after)
        .select_related("work_order")
        .only(*[f.name for f in ProductionConfirmation._meta.concrete_fields], "work_order__number")
        .order_by("seq")[:limit]
    )
    return [confirmation_representation(c, c.work_order.number) for c in rows]


# --- Master data ------------------------------------------------------------------------------


def site_data(site: Site) -> dict:
    return {"code": site.code, "name": site.name, "time_zone": site.time_zone}


def area_data(area: Area) -> dict:
    return {"code": area.code, "name": area.name, "site": area.site.code}


def work_center_data(wc: WorkCenter) -> dict:
    return {"code": wc.code, "name": wc.name, "area": wc.area.code}


def product_data(product: Product) -> dict:
    return {"code": product.code, "name": product.name, "unit": product.unit}


def routing_data(routing: Routing) -> dict:
    steps = sorted(routing.steps.all(), key=lambda step: step.sequence)
    return {
        "code": routing.code,
        "product": routing.product.code,
        "active": routing.active,
        "version": routing.version,
        "steps": [
            {
                "sequence": step.sequence,
                "name": step.name,
                "work_center": step.work_center.code,
                "setup_seconds": step.setup_seconds,
                "cycle_seconds": quantity(step.cycle_seconds),
                "instructions": step.instructions,
                "checks": [_check_data(c) for c in step.checks.all()],
            }
            for step in steps
        ],
    }


def _check_data(c) -> dict:
    def number(value):
        return None if value is None else quantity(value)

    return {
        "code": c.code,
        "name": c.name,
        "kind": c.kind,
        "nominal": number(c.nominal),
        "lower_limit": number(c.lower_limit),
        "upper_limit": number(c.upper_limit),
        "unit": c.unit,
        "decimals": c.decimals,
        "defect_codes": c.defect_codes,
        "sample_size": c.sample_size,
        "first_piece": c.first_piece,
        "every_n": c.every_n,
        "every_minutes": c.every_minutes,
        "last_piece": c.last_piece,
        "mandatory": c.mandatory,
        "reaction": c.reaction,
    }


def machines_data(machines: list[Machine]) -> list[dict]:
    from shopfloor.plc.selectors import connectivity

    ids = [m.pk for m in machines]
    current: dict[int, Operation] = {}
    for op in (
        Operation.objects.filter(
            machine_id__in=ids, status__in=[OperationStatus.RUNNING, OperationStatus.PAUSED]
        )
        .select_related("work_order", "work_center", "machine")
        .order_by("-status", "-updated_at")  # running before paused
    ):
        current.setdefault(op.machine_id, op)
    plc, connections = connectivity(machines)
    out = []
    for machine in machines:
        op = current.get(machine.pk)
        out.append(
            {
                "code": machine.code,
                "name": machine.name,
                "work_center": machine.work_center.code,
                "state": machine.state,
                "state_since": iso_utc(machine.state_since),
                "current_operation": {
                    "work_order": op.work_order.number,
                    "sequence": op.sequence,
                    "name": op.name,
                    "work_center": op.work_center.code,
                    "machine": machine.code,
                    "status": op.status,
                }
                if op
                else None,
                "plc": plc.get(machine.pk),
                "connection": connections[machine.pk],
            }
        )
    return out


def endpoint_data(endpoint: ErpEndpoint) -> dict:
    return {
        "code": endpoint.code,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "active": endpoint.active,
    }
