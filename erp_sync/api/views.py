"""The v1 REST API (published as OpenAPI 3.1 at /api/v1/schema/). Views parse with an
input serializer, authorise by scope, call a service or selector, and render plain data."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from erp_sync import selectors as api_selectors
from erp_sync import services as erp_services
from erp_sync.auth import BearerTokenAuthentication, ErpScope, IntegratorScope, MasterDataScope
from erp_sync.models import ErpEndpoint
from mes import masterdata, services
from mes.errors import AlreadyExists, NotFound, StaleObject
from mes.formats import iso_utc
from mes.models import (
    CODE_VALIDATOR,
    Area,
    Machine,
    Product,
    Routing,
    Site,
    WorkCenter,
    WorkOrder,
)
from mes.performance import selectors as performance
from mes.quality import selectors as quality_selectors
from shopfloor.downtime import downtime_representation, downtimes_after

from . import serializers as s
from .exceptions import PreconditionFailed
from .pagination import page_by_change, page_by_code, page_by_start

ERRORS = {
    400: OpenApiResponse(s.ErrorSerializer, description="invalid (or unknown_<kind>)"),
    401: OpenApiResponse(s.ErrorSerializer, description="not_authenticated"),
    403: OpenApiResponse(s.ErrorSerializer, description="permission_denied"),
    404: OpenApiResponse(s.ErrorSerializer, description="not_found"),
    405: OpenApiResponse(s.ErrorSerializer, description="method_not_allowed"),
    406: OpenApiResponse(
        s.ErrorSerializer, description="not_acceptable (the API answers application/json)"
    ),
    415: OpenApiResponse(s.ErrorSerializer, description="unsupported_media_type"),
    429: OpenApiResponse(s.ErrorSerializer, description="throttled"),
}
# Operations that read a body: one over the size limit (DATA_UPLOAD_MAX_MEMORY_SIZE).
BODY_ERRORS = {
    413: OpenApiResponse(
        s.ErrorSerializer,
        description="payload_too_large (the body is larger than "
        f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes)",
    )
}
CONFLICT = {409: OpenApiResponse(s.ErrorSerializer, description="conflict")}
TRANSITION = {409: OpenApiResponse(s.ErrorSerializer, description="invalid_transition")}
PRECONDITION = {412: OpenApiResponse(s.ErrorSerializer, description="precondition_failed")}
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Refuse the change (412) unless the order's ETag is this.",
)
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Answer 304 when the order's ETag is this.",
)
ETAG = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200, 201, 304],
    description="The order's version, for If-Match and If-None-Match.",
)
CODE_PATH = OpenApiParameter("code", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=s.CODE_REGEX)
NUMBER_PATH = OpenApiParameter(
    "number",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    pattern=s.CODE_REGEX,
    description="The ERP's work order number.",
)


class ClientRateThrottle(UserRateThrottle):
    """Per API client (the principal's id), rate from settings (MES_API_THROTTLE_RATE)."""

    scope = "api_client"


class ApiView(APIView):
    authentication_classes = [BearerTokenAuthentication]
    throttle_classes = [ClientRateThrottle]

    @staticmethod
    def parse(serializer_class, data, *, partial: bool = False) -> dict:
        serializer = serializer_class(data=data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


# --- ETags ------------------------------------------------------------------------------------


def etag_of(wo: WorkOrder) -> str:
    return f'"wo-{wo.pk}-v{wo.version}"'


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def check_if_match(request: Request, wo: WorkOrder | None) -> int | None:
    """412 unless If-Match (when given) names the current version; returns the version the
    client saw, for the service's own stale check under the row lock."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = _etags(header)
    if wo is None or ("*" not in tags and etag_of(wo) not in tags):
        raise PreconditionFailed()
    return wo.version


def with_etag(response: HttpResponse, wo: WorkOrder) -> HttpResponse:
    response["ETag"] = etag_of(wo)
    return response


# --- Work orders ------------------------------------------------------------------------------


def code_or_404(code: str, what: str) -> str:
    """Codes that cannot exist (bad characters, a NUL byte) are simply not found."""
    if not CODE_VALIDATOR.regex.match(code):
        raise NotFound(f"No {what} {code!r}.")
    return code


def _work_order_or_404(number: str) -> WorkOrder:
    wo = api_selectors.work_order(code_or_404(number, "work order"))
    if wo is None:
        raise NotFound(f"Work order {number} does not exist.")
    return wo


def _represent(number: str) -> tuple[WorkOrder, str]:
    wo = _work_order_or_404(number)
    return wo, api_selectors.work_order_json(wo)


def json_response(text: str, status_code: int = 200) -> HttpResponse:
    """Already-rendered JSON (the stored representations), passed through untouched."""
    return HttpResponse(text, status=status_code, content_type="application/json")


class WorkOrderListView(ApiView):
    permission_classes = [ErpScope]

    @extend_schema(
        operation_id="work_orders_list",
        parameters=[s.WorkOrderQuerySerializer],
        responses={200: s.WorkOrderPageSerializer, **ERRORS},
        description="Work orders. With `updated_since` a changes feed ordered by "
        "(`updated_at`, `number`); following `next` never skips an order that changed "
        "during the walk.",
    )
    def get(self, request: Request) -> Response:
        query = self.parse(s.WorkOrderQuerySerializer, request.query_params)
        queryset = api_selectors.work_orders_filtered(query)
        if "updated_since" in query:
            rows, next_link = page_by_change(
                queryset.filter(updated_at__gte=query["updated_since"]),
                request,
                query["page_size"],
                query.get("cursor"),
            )
        else:
            rows, next_link = page_by_code(
                queryset, request, query["page_size"], query.get("cursor"), field="number"
            )
        results = api_selectors.work_orders_json(rows)
        return json_response(f'{{"results":{results},"next":{json.dumps(next_link)}}}')


class WorkOrderDetailView(ApiView):
    permission_classes = [ErpScope]

    @extend_schema(
        operation_id="work_orders_retrieve",
        parameters=[NUMBER_PATH, IF_NONE_MATCH, ETAG],
        responses={
            200: s.WorkOrderSerializer,
            304: OpenApiResponse(description="Not modified: the ETag in If-None-Match is current."),
            **ERRORS,
        },
    )
    def get(self, request: Request, number: str) -> Response:
        wo = _work_order_or_404(number)
        seen = _etags(request.headers.get("If-None-Match", ""))
        if "*" in seen or etag_of(wo) in seen:
            return with_etag(Response(status=status.HTTP_304_NOT_MODIFIED), wo)
        return with_etag(json_response(api_selectors.work_order_json(wo)), wo)

    @extend_schema(
        operation_id="work_orders_put",
        parameters=[NUMBER_PATH, IF_MATCH, ETAG],
        request=s.WorkOrderPutSerializer,
        responses={
            200: s.WorkOrderSerializer,
            201: s.WorkOrderSerializer,
            **ERRORS,
            **BODY_ERRORS,
            **CONFLICT,
            **PRECONDITION,
        },
        description="Create or update the order with this ERP number. The same body twice "
        "gives one order and one change event.",
    )
    def put(self, request: Request, number: str) -> Response:
        api_selectors.validate_code("number", number)
        body = self.parse(s.WorkOrderPutSerializer, request.data)
        product = api_selectors.product_by_code(body["product"])
        routing = api_selectors.routing_by_code(body.get("routing"))
        actor = services.Actor.system(f"api:{request.auth.name}")
        try:
            with transaction.atomic():
                created = self._upsert(request, number, body, product, routing, actor)
        except (IntegrityError, AlreadyExists):
            # Two first deliveries of the same order raced and the other one created it
            # (after this one looked, before or while it inserted): this one is an update
            # (most likely "unchanged") of what the other wrote.
            with transaction.atomic():
                created = self._upsert(request, number, body, product, routing, actor)
        wo, text = _represent(number)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return with_etag(json_response(text, code), wo)

    def _upsert(self, request, number, body, product, routing, actor) -> bool:
        """Create or update; True when created."""
        existing = WorkOrder.objects.filter(number=number).first()
        expected = check_if_match(request, existing)
        if existing is None:
            services.create_work_order(
                number=number,
                product=product,
                routing=routing,
                quantity=body["quantity"],
                due_date=body["due_date"],
                priority=body["priority"],
                notes=body["notes"],
                release=body["release"],
                actor=actor,
            )
            return True
        try:
            wo, _ = services.update_work_order(
                existing,
                actor=actor,
                quantity=body["quantity"],
                due_date=body["due_date"],
                priority=body["priority"],
                notes=body["notes"],
                product=product,
                routing=routing,
                expected_version=expected,
            )
        except StaleObject:
            raise PreconditionFailed() from None
        if body["release"] and wo.status == "planned":
            services.release_work_order(wo, actor=actor)
        return False


def transition_view(name: str, service, body_serializer=s.ReasonSerializer):
    """POST /work-orders/{number}/<name>/: ``service(wo, actor=, reason=,
    expected_version=)``, answered with the order's representation."""

    class View(ApiView):
        permission_classes = [ErpScope]

        @extend_schema(
            operation_id=f"work_orders_{name}",
            parameters=[NUMBER_PATH, IF_MATCH, ETAG],
            request=body_serializer,
            responses={
                200: s.WorkOrderSerializer,
                **ERRORS,
                **BODY_ERRORS,
                **TRANSITION,
                **PRECONDITION,
            },
        )
        def post(self, request: Request, number: str) -> Response:
            wo = _work_order_or_404(number)
            body = self.parse(body_serializer, request.data)
            expected = check_if_match(request, wo)
            actor = services.Actor.system(f"api:{request.auth.name}")
            try:
                service(wo, actor=actor, reason=body["reason"], expected_version=expected)
            except StaleObject:
                raise PreconditionFailed() from None
            wo, text = _represent(number)
            return with_etag(json_response(text), wo)

    View.__name__ = f"WorkOrder{name.capitalize()}View"
    return View.as_view()


work_order_hold = transition_view("hold", services.hold_work_order)
work_order_release = transition_view("release", services.release_work_order, s.ReleaseSerializer)
work_order_cancel = transition_view("cancel", services.cancel_work_order)


# --- Confirmations ----------------------------------------------------------------------------


class ConfirmationListView(ApiView):
    permission_classes = [ErpScope]

    @extend_schema(
        operation_id="confirmations_list",
        parameters=[s.ConfirmationQuerySerializer],
        responses={200: s.ConfirmationPageSerializer, **ERRORS},
        description="Production confirmations after `after`, by strictly increasing, gap-free "
        "`seq`: a reader that stores `last_seq` misses nothing.",
    )
    def get(self, request: Request) -> Response:
        query = self.parse(s.ConfirmationQuerySerializer, request.query_params)
        results = api_selectors.confirmations_after(query["after"], query["limit"])
        last = results[-1]["seq"] if results else query["after"]
        return Response({"results": results, "last_seq": last})


# --- Quality --------------------------------------------------------------------------------


class QualityResultListView(ApiView):
    permission_classes = [ErpScope]

    @extend_schema(
        operation_id="quality_results_list",
        parameters=[s.ConfirmationQuerySerializer],
        responses={200: s.QualityResultPageSerializer, **ERRORS},
        description="Inspection results after `after`, by strictly increasing, gap-free `seq` "
        "(as confirmations): a reader that stores `last_seq` misses nothing. A correction "
        "is a new result with `version` above 1 and `supersedes` naming the one it corrects.",
    )
    def get(self, request: Request) -> Response:
        query = self.parse(s.ConfirmationQuerySerializer, request.query_params)
        rows = quality_selectors.results_after(query["after"], query["limit"])
        results = [quality_selectors.result_representation(r) for r in rows]
        last = results[-1]["seq"] if results else query["after"]
        return Response({"results": results, "last_seq": last})


class NonconformanceListView(ApiView):
    permission_classes = [ErpScope]

    @extend_schema(
        operation_id="quality_nonconformances_list",
        parameters=[s.NonconformanceQuerySerializer],
        responses={200: s.NonconformancePageSerializer, **ERRORS},
        description="Nonconformances by number, optionally only `open` or `closed` ones. The "
        "ERP also receives each one as a `quality.nonconformance` event when it opens and "
        "when its signed disposition closes it.",
    )
    def get(self, request: Request) -> Response:
        query = self.parse(s.NonconformanceQuerySerializer, request.query_params)
        rows, next_link = page_by_code(
            quality_selectors.nonconformances(query.get("status")),
            request,
            query["page_size"],
            query.get("cursor"),
            field="number",
        )
        return Response(
            {
                "results": [quality_selectors.nonconformance_representation(nc) for nc in rows],
                "next": next_link,
            }
        )


# --- Performance and downtimes ----------------------------------------------------------------


class OeeView(ApiView):
    permission_classes = [ErpScope]

    @extend_schema(
        operation_id="oee_list",
        parameters=[s.OeeQuerySerializer],
        responses={200: s.OeePageSerializer, **ERRORS},
        description="OEE after ISO 22400 of every machine, work center, area or site (`level`; "
        "one with `code`) over `start` to `end` (default now), taken to whole quarter hours "
        "and ending at the latest now. `availability`, `performance`, `quality` and `oee` "
        "are ratios from 0 to 1, null where undefined (no planned time, no run time, "
        "nothing counted); the losses are in seconds. Planned time comes from the sites' "
        "shift calendars. An unknown `code` is 404.",
    )
    def get(self, request: Request) -> Response:
        query = self.parse(s.OeeQuerySerializer, request.query_params)
        now = timezone.now()
        start, end = query["start"], query.get("end") or now
        if end <= start:
            raise ValidationError({"start": ["The start is before now (or before the end)."]})
        level, code = query["level"], query.get("code")
        if code and not performance.level_exists(level, code):
            raise NotFound(f"No {level.replace('_', ' ')} {code}.")
        span = performance.Range.of(start, end, now)
        rows = performance.figures(level, start=start, end=end, code=code, now=now)
        return Response(
            {
                "level": level,
                "start": iso_utc(span.start),
                "end": iso_utc(span.end),
                "results": [performance.representation(row) for row in rows],
            }
        )


class DowntimeListView(ApiView):
    permission_classes = [ErpScope]

    @extend_schema(
        operation_id="downtimes_list",
        parameters=[s.DowntimeQuerySerializer],
        responses={200: s.DowntimePageSerializer, **ERRORS},
        description="The machines' stops (downtime records) still open or ended after "
        "`after`, by start time, with their reason once given (`planned` says whether the "
        "reason is a planned stop). A reason may be given after the stop ended: read again "
        "from before its start to see it.",
    )
    def get(self, request: Request) -> Response:
        query = self.parse(s.DowntimeQuerySerializer, request.query_params)
        rows, next_link = page_by_start(
            downtimes_after(query["after"], query.get("machine")),
            request,
            query["page_size"],
            query.get("cursor"),
        )
        now = timezone.now()
        return Response(
            {"results": [downtime_representation(r, now) for r in rows], "next": next_link}
        )


# --- Master data and machines -----------------------------------------------------------------


class _MasterDataView(ApiView):
    """GET list / GET one / idempotent PUT of a master-data kind, by code."""

    permission_classes = [MasterDataScope]
    model: type
    serializer: type
    represent = staticmethod(lambda obj: {})
    related: tuple[str, ...] = ()

    def upsert(self, code: str, body: dict):
        raise NotImplementedError

    def queryset(self):
        return self.model.objects.select_related(*self.related)

    def get(self, request: Request, code: str | None = None) -> Response:
        if code is not None:
            code_or_404(code, str(self.model._meta.verbose_name))
        if code is None:
            query = self.parse(s.PageQuerySerializer, request.query_params)
            rows, next_link = page_by_code(
                self.queryset(), request, query["page_size"], query.get("cursor")
            )
            return Response({"results": self.represent_many(rows), "next": next_link})
        obj = self.queryset().filter(code=code).first()
        if obj is None:
            raise NotFound(f"No {self.model._meta.verbose_name} {code}.")
        return Response(self.represent_many([obj])[0])

    def represent_many(self, rows: list) -> list[dict]:
        return [self.represent(row) for row in rows]

    def put(self, request: Request, code: str | None = None) -> Response:
        api_selectors.validate_code("code", code)
        body = self.parse(self.serializer, request.data)
        with transaction.atomic():
            obj, created, _ = self.upsert(code, body)
        obj = self.queryset().get(pk=obj.pk)
        data = self.represent_many([obj])[0]
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _master_schema(kind: str, serializer, *, extra_errors=None):
    page = s.page_of(serializer, f"{serializer.__name__.removesuffix('Serializer')}Page")
    put_errors = {**ERRORS, **BODY_ERRORS, **(extra_errors or {})}
    return {
        "list": extend_schema(
            operation_id=f"{kind}_list",
            parameters=[s.PageQuerySerializer],
            responses={200: page, **ERRORS},
        ),
        "get": extend_schema(
            operation_id=f"{kind}_retrieve",
            parameters=[CODE_PATH],
            responses={200: serializer, **ERRORS},
        ),
        "put": extend_schema(
            operation_id=f"{kind}_put",
            parameters=[CODE_PATH],
            request=serializer,
            responses={200: serializer, 201: serializer, **put_errors},
        ),
    }


def master_views(kind: str, base: type, serializer, extra_errors=None):
    """A list view and a detail view class for one master-data kind (schema per view)."""
    schemas = _master_schema(kind, serializer, extra_errors=extra_errors)

    class ListView(base):
        http_method_names = ["get", "head", "options"]

        @schemas["list"]
        def get(self, request: Request) -> Response:
            return base.get(self, request)

    class DetailView(base):
        @schemas["get"]
        def get(self, request: Request, code: str) -> Response:
            return base.get(self, request, code)

        @schemas["put"]
        def put(self, request: Request, code: str) -> Response:
            return base.put(self, request, code)

    ListView.__name__ = f"{base.__name__}List"
    DetailView.__name__ = f"{base.__name__}Detail"
    return ListView.as_view(), DetailView.as_view()


class SiteViews(_MasterDataView):
    model, serializer = Site, s.SiteSerializer
    represent = staticmethod(api_selectors.site_data)

    def upsert(self, code, body):
        return masterdata.upsert_site(code, name=body["name"], time_zone=body["time_zone"])


class AreaViews(_MasterDataView):
    model, serializer, related = Area, s.AreaSerializer, ("site",)
    represent = staticmethod(api_selectors.area_data)

    def upsert(self, code, body):
        return masterdata.upsert_area(code, name=body["name"], site=body["site"])


class WorkCenterViews(_MasterDataView):
    model, serializer, related = WorkCenter, s.WorkCenterSerializer, ("area",)
    represent = staticmethod(api_selectors.work_center_data)

    def upsert(self, code, body):
        return masterdata.upsert_work_center(code, name=body["name"], area=body["area"])


class ProductViews(_MasterDataView):
    model, serializer = Product, s.ProductSerializer
    represent = staticmethod(api_selectors.product_data)

    def upsert(self, code, body):
        return masterdata.upsert_product(code, name=body["name"], unit=body["unit"])


class RoutingViews(_MasterDataView):
    model, serializer, related = Routing, s.RoutingSerializer, ("product",)

    def queryset(self):
        return super().queryset().prefetch_related("steps__work_center", "steps__checks")

    def represent_many(self, rows):
        return [api_selectors.routing_data(row) for row in rows]

    def upsert(self, code, body):
        return masterdata.upsert_routing(
            code, product=body["product"], active=body["active"], steps=body["steps"]
        )


class MachineViews(_MasterDataView):
    model, serializer, related = Machine, s.MachinePutSerializer, ("work_center",)

    def represent_many(self, rows):
        return api_selectors.machines_data(rows)

    def upsert(self, code, body):
        obj, created, changed = masterdata.upsert_machine(
            code, name=body["name"], work_center=body["work_center"]
        )
        if "connection" in body:  # left out: the connection stays as it is
            changed = erp_services.set_machine_connection(obj, body["connection"]) or changed
        return obj, created, changed


sites = master_views("sites", SiteViews, s.SiteSerializer)
areas = master_views("areas", AreaViews, s.AreaSerializer)
work_centers = master_views("work_centers", WorkCenterViews, s.WorkCenterSerializer)
products = master_views("products", ProductViews, s.ProductSerializer)
routings = master_views("routings", RoutingViews, s.RoutingSerializer, extra_errors=CONFLICT)
machines_schema = _master_schema("machines", s.MachineSerializer)


class MachineList(MachineViews):
    permission_classes = [ErpScope]
    http_method_names = ["get", "head", "options"]

    @machines_schema["list"]
    def get(self, request: Request) -> Response:
        return MachineViews.get(self, request)


class MachineDetail(MachineViews):
    permission_classes = [MasterDataScope]

    @machines_schema["get"]
    def get(self, request: Request, code: str) -> Response:
        return MachineViews.get(self, request, code)

    @extend_schema(
        operation_id="machines_put",
        parameters=[CODE_PATH],
        request=s.MachinePutSerializer,
        responses={
            200: s.MachineSerializer,
            201: s.MachineSerializer,
            **ERRORS,
            **BODY_ERRORS,
        },
        description="Create or update a machine and its PLC connection (integrator). The "
        "poller picks a connection change up within one poll interval plus a second.",
    )
    def put(self, request: Request, code: str) -> Response:
        return MachineViews.put(self, request, code)


# --- ERP endpoints ----------------------------------------------------------------------------


class ErpEndpointList(ApiView):
    permission_classes = [IntegratorScope]

    @extend_schema(
        operation_id="erp_endpoints_list",
        parameters=[s.PageQuerySerializer],
        responses={200: s.page_of(s.ErpEndpointSerializer, "ErpEndpointPage"), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = self.parse(s.PageQuerySerializer, request.query_params)
        rows, next_link = page_by_code(
            ErpEndpoint.objects.all(), request, query["page_size"], query.get("cursor")
        )
        return Response(
            {"results": [api_selectors.endpoint_data(e) for e in rows], "next": next_link}
        )


class ErpEndpointDetail(ApiView):
    permission_classes = [IntegratorScope]

    @extend_schema(
        operation_id="erp_endpoints_retrieve",
        parameters=[CODE_PATH],
        responses={200: s.ErpEndpointSerializer, **ERRORS},
    )
    def get(self, request: Request, code: str) -> Response:
        endpoint = ErpEndpoint.objects.filter(code=code_or_404(code, "ERP endpoint")).first()
        if endpoint is None:
            raise NotFound(f"No ERP endpoint {code}.")
        return Response(api_selectors.endpoint_data(endpoint))

    @extend_schema(
        operation_id="erp_endpoints_put",
        parameters=[CODE_PATH],
        request=s.ErpEndpointSerializer,
        responses={
            200: s.ErpEndpointSerializer,
            201: s.ErpEndpointSerializer,
            **ERRORS,
            **BODY_ERRORS,
        },
    )
    def put(self, request: Request, code: str) -> Response:
        api_selectors.validate_code("code", code)
        body = self.parse(s.ErpEndpointSerializer, request.data)
        endpoint, created, _ = erp_services.upsert_endpoint(
            code,
            url=body["url"],
            secret=body.get("secret"),
            event_types=body["event_types"],
            active=body["active"],
        )
        return Response(
            api_selectors.endpoint_data(endpoint),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="erp_endpoints_delete",
        parameters=[CODE_PATH],
        responses={204: OpenApiResponse(description="Deleted"), **ERRORS},
    )
    def delete(self, request: Request, code: str) -> Response:
        endpoint = ErpEndpoint.objects.filter(code=code_or_404(code, "ERP endpoint")).first()
        if endpoint is None:
            raise NotFound(f"No ERP endpoint {code}.")
        erp_services.delete_endpoint(endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)
