"""drf-spectacular extensions and hooks: how our API looks in OpenAPI 3.1.

- bearer-token authentication;
- exact decimals: bounds and, for requests, ``multipleOf``;
- every response field required (responses always carry every key; generated clients
  would otherwise type each one "maybe unset");
- the outbound events as OpenAPI 3.1 ``webhooks``, one per event type, with the headers
  each delivery carries.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework import serializers

from erp_sync.models import EventType

from . import serializers as s


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "erp_sync.auth.BearerTokenAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API client's token (scopes: erp, integrator).",
        }


class ExactDecimalExtension(OpenApiSerializerFieldExtension):
    """A decimal with ``decimal_places`` = n is declared ``multipleOf: 10^-n``: a client
    validating before it sends learns that 0.0001 is one decimal too many. (Responses carry
    no limits: :func:`postprocess` strips them.)"""

    target_class = "erp_sync.api.serializers.ExactDecimalField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        # The caller adds the field's meta (null, default, description) again: drop it here.
        if isinstance(schema.get("type"), list):
            schema["type"] = next(t for t in schema["type"] if t != "null")
        for key in ("default", "description", "readOnly", "writeOnly"):
            schema.pop(key, None)
        schema["multipleOf"] = float(Decimal(1).scaleb(-self.target.decimal_places))
        return schema


# --- Outbound events (webhooks) ---------------------------------------------------------------


class ScheduleChangedSerializer(serializers.Serializer):
    work_order = serializers.CharField()
    projected_end = serializers.DateTimeField(
        allow_null=True, help_text="Null when the order is no longer scheduled."
    )
    previous_projected_end = serializers.DateTimeField(allow_null=True)
    at_risk = serializers.BooleanField(help_text="projected_end is later than due_date.")
    reason = serializers.CharField(help_text="What made the plan change, in words.")


EVENT_DATA: dict[str, tuple[type[serializers.Serializer], str]] = {
    EventType.WORK_ORDER_UPDATED.value: (
        s.WorkOrderSerializer,
        "A work order changed (status, quantities, plan); `data` is its representation "
        "after the change, as `GET /api/v1/work-orders/{number}/` returns it.",
    ),
    EventType.CONFIRMATION_CREATED.value: (
        s.ConfirmationSerializer,
        "A production confirmation was recorded; `data` is the confirmation as in "
        "`GET /api/v1/confirmations/`.",
    ),
    EventType.SCHEDULE_CHANGED.value: (
        ScheduleChangedSerializer,
        "The live schedule moved an order's projected end (a breakdown, a rush order, a "
        "capacity change).",
    ),
    EventType.QUALITY_NONCONFORMANCE.value: (
        s.NonconformanceSerializer,
        "A nonconformance was opened, or closed by its signed disposition; `data` is the "
        "nonconformance as in `GET /api/v1/quality/nonconformances/`.",
    ),
}


def envelope_name(event_type: str) -> str:
    """``work_order.updated`` -> ``WorkOrderUpdatedEvent``."""
    words = event_type.replace(".", "_").split("_")
    return "".join(w.capitalize() for w in words) + "Event"


def envelope_serializer(event_type: str) -> type[serializers.Serializer]:
    data, _ = EVENT_DATA[event_type]
    return type(
        envelope_name(event_type),
        (serializers.Serializer,),
        {
            "__doc__": f"The body of a `{event_type}` delivery.",
            "id": serializers.UUIDField(
                help_text="The event's id, also sent as `Idempotency-Key`: an event delivered "
                "twice (after a timeout, say) has the same id."
            ),
            "type": serializers.ChoiceField(choices=[event_type]),
            "occurred_at": serializers.DateTimeField(),
            "data": data(),
        },
    )


RECEIVER_RESPONSES = {
    200: OpenApiResponse(description="Any 2xx: delivered."),
    500: OpenApiResponse(
        description="Anything else, or no answer within the timeout: retried with capped "
        "exponential backoff, in order per work order, until delivered or dead-lettered."
    ),
}


def _webhooks() -> list[OpenApiWebhook]:
    return [
        OpenApiWebhook(
            name=event_type,
            decorator=extend_schema(
                operation_id=envelope_name(event_type)[0].lower() + envelope_name(event_type)[1:],
                summary=event_type,
                description=description
                + " POSTed to every active ERP endpoint subscribed to this type "
                "(`PUT /api/v1/erp-endpoints/{code}/`).",
                request=envelope_serializer(event_type),
                responses=RECEIVER_RESPONSES,
            ),
        )
        for event_type, (_, description) in EVENT_DATA.items()
    ]


# SPECTACULAR_SETTINGS["WEBHOOKS"] names each by import path.
(
    WORK_ORDER_UPDATED_WEBHOOK,
    CONFIRMATION_CREATED_WEBHOOK,
    SCHEDULE_CHANGED_WEBHOOK,
    QUALITY_NONCONFORMANCE_WEBHOOK,
) = _webhooks()

DELIVERY_HEADERS: list[dict[str, Any]] = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": "The event id (the body's `id`): store it and ignore a repeat.",
        "schema": {"type": "string", "format": "uuid"},
    },
    {
        "name": "X-MES-Signature",
        "in": "header",
        "required": True,
        "description": "`sha256=` and the hex HMAC-SHA256 of the raw body with the "
        "endpoint's secret. Compare in constant time before trusting the body.",
        "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
    },
    {
        "name": "X-MES-Event-Type",
        "in": "header",
        "required": True,
        "description": "The body's `type`, for routing without parsing.",
        "schema": {"type": "string"},
    },
]


# --- Post-processing ----------------------------------------------------------------------------

EXTENSIBLE = (
    "Values may be added within v1 (additively): a client must accept a value it does not know yet."
)


# Limits a server enforces on what it is sent. A response shows what is stored, and data
# entered in the admin may lie outside an API limit (a longer instruction text, say): a
# response schema declares shapes and types, not these.
REQUEST_LIMITS = (
    "maxLength",
    "minLength",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "maxItems",
    "minItems",
    "minProperties",
    "pattern",
    "propertyNames",
    "multipleOf",
)


def _without_limits(schema: Any) -> None:
    if isinstance(schema, list):
        for item in schema:
            _without_limits(item)
        return
    if not isinstance(schema, dict):
        return
    for key in REQUEST_LIMITS:
        schema.pop(key, None)
    for key in ("items", "additionalProperties", "oneOf", "anyOf", "allOf"):
        _without_limits(schema.get(key))
    for value in schema.get("properties", {}).values():
        _without_limits(value)


CLOSED = (
    "A property not listed here is refused: 400 `invalid`, with the property named in "
    "`errors` (a misspelt field never passes for one left out)."
)


def postprocess(result: dict, generator, request, public) -> dict:
    """Request components are closed (``additionalProperties: false``: the API refuses a
    key it does not know, :class:`erp_sync.api.serializers.InputSerializer`). Response
    components: every property required (the representations always carry every key, null
    where there is no value), and no request limits. Every enumeration says it may grow;
    ``Error.code`` also takes a code the client does not know yet, so that a generated
    client still parses a new error. Each webhook declares its delivery headers."""
    components = result.get("components", {}).get("schemas", {})
    for name, schema in components.items():
        if "enum" in schema:
            schema["description"] = f"{schema.get('description', '')}\n\n{EXTENSIBLE}".strip()
        if name.endswith("Request") and "properties" in schema:
            schema["additionalProperties"] = False
            schema["description"] = f"{schema.get('description', '')}\n\n{CLOSED}".strip()
        if name.endswith("Request") or "properties" not in schema:
            continue
        schema["required"] = sorted(schema["properties"])
        _without_limits(schema)
    code = components["Error"]["properties"]["code"]
    components["Error"]["properties"]["code"] = {
        "anyOf": [*code.pop("allOf"), {"type": "string"}],
        **code,
    }
    for event_type, path_item in result.get("webhooks", {}).items():
        operation = path_item["post"]
        operation["parameters"] = [
            dict(header, schema={"type": "string", "enum": [event_type]})
            if header["name"] == "X-MES-Event-Type"
            else header
            for header in DELIVERY_HEADERS
        ]
    return result
