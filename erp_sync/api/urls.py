from csp.decorators import csp_update
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer

from . import views

app_name = "api"


def pair(prefix: str, views_pair, name: str) -> list:
    list_view, detail_view = views_pair
    return [
        path(f"{prefix}/", list_view, name=f"{name}-list"),
        path(f"{prefix}/<str:code>/", detail_view, name=f"{name}-detail"),
    ]


class _JsonErrors:
    """A refusal (401, 403) answers the API's JSON error body, not YAML or a template."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


class SchemaView(_JsonErrors, SpectacularAPIView):
    pass


class SwaggerView(_JsonErrors, SpectacularSwaggerSplitView):
    pass


_swagger = SwaggerView.as_view(url_name="api:schema")


# The split view serves Swagger UI's start script as a file (no inline script); Swagger UI
# sets inline styles, which only this page allows.
@csp_update({"style-src": ["'unsafe-inline'"]})
def swagger(request: HttpRequest) -> HttpResponse:
    """Swagger UI, a page for people: a browser that is not signed in goes to sign-in (the
    view itself answers who may read the schema, ``erp_sync.auth.CanReadSchema``)."""
    if not request.user.is_authenticated and "HTTP_AUTHORIZATION" not in request.META:
        return redirect_to_login(request.get_full_path())
    return _swagger(request)


urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", swagger, name="docs"),
    path("work-orders/", views.WorkOrderListView.as_view(), name="work-order-list"),
    path(
        "work-orders/<str:number>/", views.WorkOrderDetailView.as_view(), name="work-order-detail"
    ),
    path("work-orders/<str:number>/hold/", views.work_order_hold, name="work-order-hold"),
    path(
        "work-orders/<str:number>/release/",
        views.work_order_release,
        name="work-order-release",
    ),
    path(
        "work-orders/<str:number>/cancel/",
        views.work_order_cancel,
        name="work-order-cancel",
    ),
    path("confirmations/", views.ConfirmationListView.as_view(), name="confirmation-list"),
    path("quality/results/", views.QualityResultListView.as_view(), name="quality-result-list"),
    path(
        "quality/nonconformances/",
        views.NonconformanceListView.as_view(),
        name="quality-nonconformance-list",
    ),
    path("oee/", views.OeeView.as_view(), name="oee"),
    path("downtimes/", views.DowntimeListView.as_view(), name="downtime-list"),
    path("machines/", views.MachineList.as_view(), name="machine-list"),
    path("machines/<str:code>/", views.MachineDetail.as_view(), name="machine-detail"),
    path("erp-endpoints/", views.ErpEndpointList.as_view(), name="erp-endpoint-list"),
    path(
        "erp-endpoints/<str:code>/", views.ErpEndpointDetail.as_view(), name="erp-endpoint-detail"
    ),
    *pair("sites", views.sites, "site"),
    *pair("areas", views.areas, "area"),
    *pair("work-centers", views.work_centers, "work-center"),
    *pair("products", views.products, "product"),
    *pair("routings", views.routings, "routing"),
]
