"""Input serializers (parse and validate request bodies and query parameters) and output
serializers that document the representations in the OpenAPI schema. Responses are built
by the selectors as plain data; these classes never write."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from erp_sync.models import EventType
from mes.choices import MachineState, OperationStatus, Priority, WorkOrderStatus
from mes.models import CODE_VALIDATOR
from shopfloor.plc.config import GROUP_RE, HOST_RE, POLL_INTERVAL_MS, TIMEOUT_MS

CODE_REGEX = r"^[A-Za-z0-9._-]{1,64}$"  # as the schema shows it (ECMA anchors)
# The models' validator: \A and \Z, as Python's $ would let a trailing newline through.
CODE_FIELD = {"max_length": 64, "validators": [CODE_VALIDATOR]}
# Every code the API answers with in Error.code. Clients must accept codes they do not know
# yet (the list grows, additively): treat an unknown 4xx code as its HTTP status.
ERROR_CODES = [
    "invalid",
    "unknown_product",
    "unknown_routing",
    "unknown_work_center",
    "unknown_area",
    "unknown_site",
    "not_found",
    "conflict",
    "invalid_transition",
    "precondition_failed",
    "not_authenticated",
    "permission_denied",
    "method_not_allowed",
    "not_acceptable",
    "unsupported_media_type",
    "throttled",
    "server_error",
    "payload_too_large",
]


class ExactDecimalField(serializers.DecimalField):
    """A decimal sent as a JSON number. The schema declares its bounds and, for requests,
    ``multipleOf`` 10^-decimal_places, so that a client can check a value before sending
    (``erp_sync.api.schema.ExactDecimalExtension``)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("coerce_to_string", False)
        super().__init__(**kwargs)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an offset; a naive time is refused rather than guessed."""

    default_error_messages = {"naive": "Give the time with an offset, e.g. 2026-12-01T14:00:00Z."}

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and timezone.is_naive(parsed):
                self.fail("naive")
        return super().to_internal_value(value)


# A request body. A key it does not know is refused (400 ``invalid``, the key named:
# ``{"relase": ["Unknown field; expected ..."]}``), at every level, lists' items included: a
# typo never passes for "left out, the default applies". Accepted besides the fields: the
# read-only ones (``code``, ``version``) and ``returned_fields``, what GET returns beside
# them, so that a client may send back what it read; those values are ignored. (Comments,
# not a docstring: the schema would show a docstring on every subclass's component.)
class InputSerializer(serializers.Serializer):
    returned_fields: tuple[str, ...] = ()

    def to_internal_value(self, data):
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            known = {*self.fields, *self.returned_fields}
            writable = ", ".join(name for name, field in self.fields.items() if not field.read_only)
            message = f"Unknown field; expected {writable}."
            unknown = {str(key): [message] for key in data if key not in known}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


# --- Errors -----------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=ERROR_CODES,
        help_text="Machine-readable. New codes may be added: treat a code you do not know "
        "by the HTTP status.",
    )
    detail = serializers.CharField(help_text="A human message.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per field (dotted paths for nested fields); may be empty.",
    )


# --- Work orders ------------------------------------------------------------------------------


class WorkOrderPutSerializer(InputSerializer):
    """The representation's read-only fields (`number`, `status`, `operations`, ...) are
    also accepted, and ignored, so that what GET returned can be sent back."""

    product = serializers.CharField(**CODE_FIELD)
    quantity = ExactDecimalField(max_digits=14, decimal_places=3, min_value=Decimal("0.001"))
    due_date = AwareDateTimeField()
    priority = serializers.ChoiceField(choices=Priority.values, default=Priority.NORMAL)
    routing = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="Defaults to the product's active routing.",
        **CODE_FIELD,
    )
    release = serializers.BooleanField(default=True, help_text="false leaves a new order planned.")
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=10000)


class ReasonSerializer(InputSerializer):
    reason = serializers.CharField(max_length=1000)


class ReleaseSerializer(InputSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)


class WorkOrderQuerySerializer(serializers.Serializer):
    updated_since = AwareDateTimeField(required=False)
    status = serializers.ChoiceField(choices=WorkOrderStatus.values, required=False)
    priority = serializers.ChoiceField(choices=Priority.values, required=False)
    product = serializers.CharField(required=False, **CODE_FIELD)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)
    cursor = serializers.CharField(required=False, max_length=500)


class PageQuerySerializer(serializers.Serializer):
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)
    cursor = serializers.CharField(required=False, max_length=500)


class OperationSummarySerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    name = serializers.CharField()
    work_center = serializers.CharField()
    machine = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=OperationStatus.values)


class OperationSerializer(OperationSummarySerializer):
    quantity_good = serializers.FloatField()
    quantity_scrap = serializers.FloatField()
    planned_start = serializers.DateTimeField(
        allow_null=True,
        help_text="From the live schedule; a finished operation keeps its last plan.",
    )
    planned_end = serializers.DateTimeField(allow_null=True)
    actual_start = serializers.DateTimeField(allow_null=True)
    actual_end = serializers.DateTimeField(allow_null=True)


class WorkOrderSerializer(serializers.Serializer):
    number = serializers.CharField()
    product = serializers.CharField()
    routing = serializers.CharField()
    quantity = serializers.FloatField()
    due_date = serializers.DateTimeField()
    priority = serializers.ChoiceField(choices=Priority.values)
    status = serializers.ChoiceField(choices=WorkOrderStatus.values)
    quantity_good = serializers.FloatField()
    quantity_scrap = serializers.FloatField()
    actual_start = serializers.DateTimeField(allow_null=True)
    actual_end = serializers.DateTimeField(allow_null=True)
    projected_end = serializers.DateTimeField(
        allow_null=True,
        help_text=(
            "When the last operation is planned to end, from the live schedule (re-planned "
            "within seconds of a change on the floor or in the orders). Null while the order "
            "is not scheduled: planned, on hold, completed or cancelled."
        ),
    )
    at_risk = serializers.BooleanField(help_text="projected_end is later than due_date.")
    current_operation = OperationSummarySerializer(allow_null=True)
    operations = OperationSerializer(many=True)
    updated_at = serializers.DateTimeField()


def returned_beside(
    representation: type[serializers.Serializer], body: type[serializers.Serializer]
) -> tuple[str, ...]:
    """The fields of a representation that a body does not take (its read-only ones)."""
    taken = set(body().fields)
    return tuple(name for name in representation().fields if name not in taken)


# What GET returns and PUT does not take (number, status, ...): sent back, ignored.
WorkOrderPutSerializer.returned_fields = returned_beside(
    WorkOrderSerializer, WorkOrderPutSerializer
)


class WorkOrderPageSerializer(serializers.Serializer):
    results = WorkOrderSerializer(many=True)
    next = serializers.URLField(allow_null=True)


# --- Confirmations ----------------------------------------------------------------------------


class ConfirmationQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(required=False, min_value=0, default=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


class MaterialSerializer(serializers.Serializer):
    lot = serializers.CharField()
    product = serializers.CharField()
    quantity = serializers.FloatField()


class ScrapReasonQuantitySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="A scrap reason code (configured in the MES).")
    quantity = serializers.FloatField()


class ConfirmationSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    id = serializers.UUIDField(help_text="The idempotency key.")
    work_order = serializers.CharField()
    operation_sequence = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["progress", "final"])
    quantity_good = serializers.FloatField(help_text="Delta since the previous confirmation.")
    quantity_scrap = serializers.FloatField(help_text="Delta since the previous confirmation.")
    labor_seconds = serializers.FloatField()
    machine_seconds = serializers.FloatField()
    materials = MaterialSerializer(many=True)
    scrap_reasons = ScrapReasonQuantitySerializer(
        many=True,
        help_text="The scrap of this delta by scrap reason code (added in v1; may be empty).",
    )
    occurred_at = serializers.DateTimeField()


class ConfirmationPageSerializer(serializers.Serializer):
    results = ConfirmationSerializer(many=True)
    last_seq = serializers.IntegerField(
        help_text="The seq of the last result (or `after` when there is none): pass it as "
        "`after` next time."
    )


# --- Master data ------------------------------------------------------------------------------


class SiteSerializer(InputSerializer):
    code = serializers.CharField(read_only=True)
    name = serializers.CharField(max_length=200)
    time_zone = serializers.CharField(max_length=64, help_text="An IANA zone name.")


class AreaSerializer(InputSerializer):
    code = serializers.CharField(read_only=True)
    name = serializers.CharField(max_length=200)
    site = serializers.CharField(**CODE_FIELD)


class WorkCenterSerializer(InputSerializer):
    code = serializers.CharField(read_only=True)
    name = serializers.CharField(max_length=200)
    area = serializers.CharField(**CODE_FIELD)


class ProductSerializer(InputSerializer):
    code = serializers.CharField(read_only=True)
    name = serializers.CharField(max_length=200)
    unit = serializers.CharField(max_length=16)


SPEC_NUMBER = {
    "max_digits": 18,
    "decimal_places": 6,
    "required": False,
    "allow_null": True,
    "default": None,
}


class CheckSerializer(InputSerializer):
    """One characteristic of a routing step's inspection plan."""

    code = serializers.CharField(**CODE_FIELD)
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(
        choices=["variable", "attribute"],
        help_text="`variable`: a measured value against spec limits; `attribute`: pass/fail.",
    )
    nominal = ExactDecimalField(**SPEC_NUMBER)
    lower_limit = ExactDecimalField(**SPEC_NUMBER)
    upper_limit = ExactDecimalField(**SPEC_NUMBER)
    unit = serializers.CharField(max_length=16, required=False, allow_blank=True, default="")
    decimals = serializers.IntegerField(min_value=0, max_value=6, default=2)
    defect_codes = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        default=list,
        max_length=100,
        help_text="Defects an operator picks from when an attribute check fails.",
    )
    sample_size = serializers.IntegerField(
        min_value=1, max_value=10, default=1, help_text="Values per sample (X-bar/R above 1)."
    )
    first_piece = serializers.BooleanField(default=True)
    every_n = serializers.IntegerField(
        min_value=1,
        max_value=2_000_000_000,
        required=False,
        allow_null=True,
        default=None,
        help_text="Due every N good units.",
    )
    every_minutes = serializers.IntegerField(
        min_value=1,
        max_value=1_000_000,
        required=False,
        allow_null=True,
        default=None,
        help_text="Due every T minutes of running time.",
    )
    last_piece = serializers.BooleanField(default=False)
    mandatory = serializers.BooleanField(
        default=True, help_text="A mandatory check that is due refuses Complete."
    )
    reaction = serializers.ChoiceField(
        choices=["warn", "hold_operation", "hold_work_order"],
        default="hold_operation",
        help_text="What an out-of-spec result does besides opening a nonconformance.",
    )


class RoutingStepSerializer(InputSerializer):
    sequence = serializers.IntegerField(min_value=1, max_value=2_000_000_000)
    name = serializers.CharField(max_length=200)
    work_center = serializers.CharField(**CODE_FIELD)
    setup_seconds = serializers.IntegerField(min_value=0, max_value=2_000_000_000, default=0)
    cycle_seconds = ExactDecimalField(
        max_digits=10, decimal_places=3, min_value=Decimal(0), default=Decimal(0)
    )
    instructions = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=20000
    )
    checks = CheckSerializer(
        many=True,
        required=False,
        max_length=50,
        help_text="The step's inspection plan. Left out, the step keeps the plan it has; "
        "`[]` removes it. Copied into operations at release.",
    )


class RoutingSerializer(InputSerializer):
    code = serializers.CharField(read_only=True)
    product = serializers.CharField(**CODE_FIELD)
    active = serializers.BooleanField(default=True)
    version = serializers.IntegerField(read_only=True)
    steps = RoutingStepSerializer(many=True, allow_empty=False)


# --- Machines ---------------------------------------------------------------------------------


# The connection is validated by the PLC layer's own parser (shopfloor.plc.config, the same
# code the admin uses); these classes describe it in the schema, with the parser's bounds.

PLC_STATES = ["running", "idle", "down", "setup"]


class RegisterSerializer(serializers.Serializer):
    table = serializers.ChoiceField(choices=["holding", "input"])
    address = serializers.IntegerField(min_value=0, max_value=65535)


class CounterRegisterSerializer(RegisterSerializer):
    words = serializers.ChoiceField(
        choices=[1, 2], default=1, help_text="1: a 16-bit counter; 2: 32 bits in two registers."
    )
    word_order = serializers.ChoiceField(
        choices=["big", "little"], default="big", help_text="big: the high word first."
    )


@extend_schema_field(
    {
        "type": "object",
        # 0-65535 without leading zeros, as the parser takes them.
        "propertyNames": {
            "pattern": r"^(0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}"
            r"|655[0-2][0-9]|6553[0-5])$"
        },
        "additionalProperties": {"type": "string", "enum": PLC_STATES},
        "minProperties": 1,
        "description": "PLC state code (0-65535, as a string key) to MES state, e.g. "
        '{"1": "running", "2": "idle"}.',
    }
)
class StateMapField(serializers.DictField):
    pass


class RegistersSerializer(serializers.Serializer):
    state = RegisterSerializer()
    state_map = StateMapField()
    good_count = CounterRegisterSerializer()
    scrap_count = CounterRegisterSerializer(
        required=False, allow_null=True, help_text="Optional; null or left out: none."
    )


class ConnectionSerializer(serializers.Serializer):
    """A machine's Modbus TCP connection, as PUT and as GET returns it: what a GET returns
    can be sent back unchanged."""

    protocol = serializers.ChoiceField(choices=["modbus_tcp"], default="modbus_tcp")
    host = serializers.RegexField(
        HOST_RE.pattern,
        max_length=253,
        help_text="A host name or an IP address.",
    )
    port = serializers.IntegerField(min_value=1, max_value=65535, default=502)
    unit_id = serializers.IntegerField(min_value=0, max_value=255, default=1)
    poll_interval_ms = serializers.IntegerField(
        min_value=POLL_INTERVAL_MS[0], max_value=POLL_INTERVAL_MS[1], default=1000
    )
    timeout_ms = serializers.IntegerField(
        min_value=TIMEOUT_MS[0], max_value=TIMEOUT_MS[1], default=500
    )
    registers = RegistersSerializer(
        required=False,
        allow_null=True,
        help_text="The register map. A new connection needs it unless `profile` names a "
        "device profile; left out (with `profile`), an existing connection keeps its map. "
        "Given with a profile, it must equal the profile's map (GET returns the profile's "
        "map here, so a GET can be sent back).",
    )
    state_map = StateMapField(
        required=False,
        help_text="Also accepted here, beside `registers` (the contract places it inside). "
        "Never returned here.",
    )
    profile = serializers.RegexField(
        CODE_REGEX,
        required=False,
        allow_null=True,
        help_text="The code of a device profile whose register map this machine shares "
        "(set up in the admin). Left out: a machine on a profile stays on it while "
        "`registers` is left out or equals the profile's map. `null`: the machine gets its "
        "own map (`registers`). Addition to the contract.",
    )
    group = serializers.RegexField(
        GROUP_RE.pattern,
        required=False,
        help_text="The poll group (Celery queue `plc.<group>`), one of the plant's "
        "MES_PLC_GROUPS. Left out: an existing connection keeps its group, a new one is in "
        "`default`. Addition to the contract.",
    )
    enabled = serializers.BooleanField(
        required=False,
        help_text="false keeps the connection but stops polling it. Left out: a new "
        "connection is enabled and an existing one keeps its setting. Addition to the "
        "contract.",
    )


@extend_schema_field(ConnectionSerializer)
class ConnectionField(serializers.JSONField):
    """Passed through as JSON-decoded: ``shopfloor.plc.config.parse_connection`` validates
    it and names each bad field (``connection.registers.state.table``)."""


class MachinePutSerializer(InputSerializer):
    """The representation's read-only fields (`code`, `state`, `plc`, ...) are also
    accepted, and ignored, so that what GET returned can be sent back."""

    name = serializers.CharField(max_length=200)
    work_center = serializers.CharField(**CODE_FIELD)
    connection = ConnectionField(
        required=False,
        allow_null=True,
        help_text="The machine's PLC connection. Left out: the connection stays as it is "
        "(a rename never disconnects a machine). `null`: the machine has no PLC (an "
        "existing connection is removed).",
    )


class ConnectionOutSerializer(ConnectionSerializer):
    """The connection as GET returns it: every field present."""

    protocol = serializers.ChoiceField(choices=["modbus_tcp"])
    port = serializers.IntegerField(min_value=1, max_value=65535)
    unit_id = serializers.IntegerField(min_value=0, max_value=255)
    poll_interval_ms = serializers.IntegerField(
        min_value=POLL_INTERVAL_MS[0], max_value=POLL_INTERVAL_MS[1]
    )
    timeout_ms = serializers.IntegerField(min_value=TIMEOUT_MS[0], max_value=TIMEOUT_MS[1])
    registers = RegistersSerializer(help_text="The effective register map (the profile's).")
    state_map = None
    profile = serializers.CharField(allow_null=True)
    group = serializers.CharField()
    enabled = serializers.BooleanField()


class PlcSerializer(serializers.Serializer):
    last_read_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    good_count = serializers.IntegerField(allow_null=True)
    scrap_count = serializers.IntegerField(allow_null=True)


class MachineCurrentOperationSerializer(OperationSummarySerializer):
    work_order = serializers.CharField()


class MachineSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    work_center = serializers.CharField()
    state = serializers.ChoiceField(choices=MachineState.values)
    state_since = serializers.DateTimeField()
    current_operation = MachineCurrentOperationSerializer(allow_null=True)
    plc = PlcSerializer(allow_null=True)
    connection = ConnectionOutSerializer(
        allow_null=True,
        help_text="The PLC connection in the shape PUT takes (null without one): send it "
        "back unchanged to keep it. Addition to the contract.",
    )


# What GET returns and PUT does not take (code, state, plc, ...): sent back, ignored.
MachinePutSerializer.returned_fields = returned_beside(MachineSerializer, MachinePutSerializer)


# --- ERP endpoints ----------------------------------------------------------------------------


class ErpEndpointSerializer(InputSerializer):
    code = serializers.CharField(read_only=True)
    url = serializers.URLField(
        max_length=500,
        help_text="http or https, to a public address: loopback, private, link-local and other "
        "internal targets are refused (400 naming `url`) unless the MES's operator allows "
        "them. Redirects are not followed.",
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        min_length=16,
        max_length=200,
        help_text="HMAC-SHA256 key for X-MES-Signature. Write-only; required on create.",
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.values), allow_empty=False
    )
    active = serializers.BooleanField(default=True)


# --- Quality ----------------------------------------------------------------------------------


class QualityResultSerializer(serializers.Serializer):
    seq = serializers.IntegerField(help_text="Strictly increasing and gap-free.")
    work_order = serializers.CharField()
    operation_sequence = serializers.IntegerField()
    characteristic = serializers.CharField()
    name = serializers.CharField()
    series = serializers.CharField(help_text="routing/step sequence/characteristic code")
    kind = serializers.ChoiceField(choices=["variable", "attribute"])
    sample = serializers.CharField(
        help_text="`first`, `last`, `piece:<n>`, `time:<minutes>` or `extra:<n>`."
    )
    values = serializers.ListField(
        child=serializers.CharField(),
        help_text="Exactly as entered: decimal text, or `pass`/`fail`.",
    )
    unit = serializers.CharField()
    lower_limit = serializers.FloatField(allow_null=True)
    upper_limit = serializers.FloatField(allow_null=True)
    verdict = serializers.ChoiceField(choices=["pass", "fail"])
    defect_code = serializers.CharField(allow_null=True)
    version = serializers.IntegerField(help_text="Above 1 for a correction.")
    supersedes = serializers.IntegerField(
        allow_null=True, help_text="The seq of the version this one corrects."
    )
    correction_reason = serializers.CharField(allow_null=True)
    machine = serializers.CharField(allow_null=True)
    recorded_by = serializers.CharField()
    recorded_at = serializers.DateTimeField()


class QualityResultPageSerializer(serializers.Serializer):
    results = QualityResultSerializer(many=True)
    last_seq = serializers.IntegerField(
        help_text="The seq of the last result (or `after` when there is none)."
    )


class NonconformanceQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["open", "closed"], required=False)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)
    cursor = serializers.CharField(required=False, max_length=200)


class NonconformanceSerializer(serializers.Serializer):
    number = serializers.CharField()
    status = serializers.ChoiceField(choices=["open", "closed"])
    work_order = serializers.CharField()
    operation_sequence = serializers.IntegerField()
    characteristic = serializers.CharField()
    name = serializers.CharField()
    sample = serializers.CharField()
    values = serializers.ListField(child=serializers.CharField())
    unit = serializers.CharField()
    lower_limit = serializers.FloatField(allow_null=True)
    upper_limit = serializers.FloatField(allow_null=True)
    result_seq = serializers.IntegerField(help_text="The current version of the result.")
    reaction = serializers.ChoiceField(choices=["warn", "hold_operation", "hold_work_order"])
    description = serializers.CharField()
    opened_at = serializers.DateTimeField()
    opened_by = serializers.CharField()
    disposition = serializers.ChoiceField(choices=["use_as_is", "rework", "scrap"], allow_null=True)
    disposition_quantity = serializers.FloatField(allow_null=True)
    rework_operation_sequence = serializers.IntegerField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    closed_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField()


class NonconformancePageSerializer(serializers.Serializer):
    results = NonconformanceSerializer(many=True)
    next = serializers.URLField(allow_null=True)


def page_of(item: type[serializers.Serializer], name: str) -> type[serializers.Serializer]:
    """A documented ``{"results": [...], "next": url|null}`` page of ``item``."""
    return type(
        name,
        (serializers.Serializer,),
        {"results": item(many=True), "next": serializers.URLField(allow_null=True)},
    )


# --- Performance (OEE) and downtimes ----------------------------------------------------------

OEE_LEVELS = ["machine", "work_center", "area", "site"]
MAX_OEE_RANGE_DAYS = 400
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class OeeQuerySerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=OEE_LEVELS)
    code = serializers.RegexField(
        CODE_REGEX, required=False, help_text="One machine, work center, area or site."
    )
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(required=False, help_text="Default: now.")

    def validate(self, attrs):
        end = attrs.get("end")
        for name in ("start", "end"):
            value = attrs.get(name)
            if value is not None and not (EARLIEST <= value <= LATEST):
                raise serializers.ValidationError(
                    {name: [f"Between {EARLIEST:%Y} and {LATEST:%Y}."]}
                )
        if end is not None and end <= attrs["start"]:
            raise serializers.ValidationError({"end": ["The end is after the start."]})
        if end is not None and (end - attrs["start"]).days > MAX_OEE_RANGE_DAYS:
            raise serializers.ValidationError(
                {"end": [f"At most {MAX_OEE_RANGE_DAYS} days from the start."]}
            )
        return attrs


class OeeLossesSerializer(serializers.Serializer):
    breakdowns = serializers.FloatField()
    setup = serializers.FloatField()
    small_stops = serializers.FloatField()
    reduced_speed = serializers.FloatField()
    startup_rejects = serializers.FloatField()
    production_rejects = serializers.FloatField()
    no_data = serializers.FloatField()


class OeeSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    machines = serializers.IntegerField()
    availability = serializers.FloatField(allow_null=True, min_value=0, max_value=1)
    performance = serializers.FloatField(allow_null=True, min_value=0, max_value=1)
    quality = serializers.FloatField(allow_null=True, min_value=0, max_value=1)
    oee = serializers.FloatField(allow_null=True, min_value=0, max_value=1)
    working_seconds = serializers.FloatField(help_text="Working time of the shift calendars.")
    planned_seconds = serializers.FloatField(help_text="Planned production time.")
    run_seconds = serializers.FloatField(help_text="Run time (short stops included).")
    setup_seconds = serializers.FloatField()
    good = serializers.FloatField()
    scrap = serializers.FloatField()
    setup_ratio = serializers.FloatField(allow_null=True)
    mtbf_seconds = serializers.FloatField(allow_null=True)
    mttr_seconds = serializers.FloatField(allow_null=True)
    failures = serializers.IntegerField()
    small_stops = serializers.IntegerField()
    losses = OeeLossesSerializer(help_text="The six big losses and time without data, in seconds.")


class OeePageSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=OEE_LEVELS)
    start = serializers.DateTimeField(help_text="The range as computed: to the quarter hour.")
    end = serializers.DateTimeField()
    results = OeeSerializer(many=True)


class DowntimeQuerySerializer(serializers.Serializer):
    after = serializers.DateTimeField(
        help_text="Stops still open or ended after this instant, oldest first."
    )
    machine = serializers.RegexField(CODE_REGEX, required=False)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)
    cursor = serializers.CharField(required=False, max_length=200)


class DowntimeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    machine = serializers.CharField()
    work_order = serializers.CharField(allow_null=True)
    operation_sequence = serializers.IntegerField(allow_null=True)
    cause = serializers.ChoiceField(choices=["down", "idle", "manual", "blocked"])
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True, help_text="Null while it lasts.")
    duration_seconds = serializers.FloatField(help_text="Up to now while it lasts.")
    reason = serializers.CharField(help_text="Empty until someone gives it.")
    reason_code = serializers.CharField(allow_null=True)
    category = serializers.CharField(allow_null=True)
    planned = serializers.BooleanField(allow_null=True)
    reason_by = serializers.CharField(allow_null=True)
    reason_at = serializers.DateTimeField(allow_null=True)


class DowntimePageSerializer(serializers.Serializer):
    results = DowntimeSerializer(many=True)
    next = serializers.URLField(allow_null=True)
