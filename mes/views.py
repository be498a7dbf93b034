"""Signed-in pages of the production domain: home, work order list and detail."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.safestring import mark_safe

from erp_sync.delivery import delivery_lag

from . import selectors
from .accounts import has_role
from .barcode import code128_svg
from .choices import Role, WorkOrderStatus
from .filters import WorkOrderFilter
from .models import Machine
from .quality.models import InspectionResult
from .statemachine import WORK_ORDER_TERMINAL


@login_required
def home(request: HttpRequest) -> HttpResponse:
    counts = dict(
        selectors.work_order_list().order_by().values_list("status").annotate(n=Count("id"))
    )
    late = (
        selectors.work_order_list()
        .exclude(status__in=WORK_ORDER_TERMINAL)
        .filter(due_date__lt=timezone.now())
        .count()
    )
    at_risk = (
        selectors.work_order_list().exclude(status__in=WORK_ORDER_TERMINAL).filter(at_risk=True)
    ).count()
    machine_states = dict(
        Machine.objects.filter(is_active=True)
        .order_by()
        .values_list("state")
        .annotate(n=Count("id"))
    )
    erp_lag = None
    if has_role(request.user, Role.SUPERVISOR, Role.PLANNER, Role.ADMIN):
        erp_lag = delivery_lag()
    return render(
        request,
        "mes/home.html",
        {
            "status_counts": [(s, counts.get(s.value, 0)) for s in WorkOrderStatus],
            "late_count": late,
            "at_risk_count": at_risk,
            "machine_states": sorted(machine_states.items()),
            "erp_lag": erp_lag,
        },
    )


@login_required
def work_order_list(request: HttpRequest) -> HttpResponse:
    filterset = WorkOrderFilter(request.GET or None, queryset=selectors.work_order_list())
    queryset = filterset.qs if filterset.is_bound and filterset.is_valid() else filterset.queryset
    page = Paginator(queryset, settings.MES_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    template = (
        "mes/partials/work_order_rows.html"
        if request.headers.get("HX-Request")
        else "mes/work_order_list.html"
    )
    return render(
        request,
        template,
        {"filter": filterset, "page": page, "query": query.urlencode(), "now": timezone.now()},
    )


@login_required
def work_order_detail(request: HttpRequest, number: str) -> HttpResponse:
    work_order = get_object_or_404(selectors.work_orders_with_operations(), number=number)
    return render(
        request,
        "mes/work_order_detail.html",
        {
            "wo": work_order,
            "operations": list(work_order.operations.all()),
            "history": selectors.work_order_history(work_order),
            "now": timezone.now(),
            "results": list(
                InspectionResult.objects.filter(work_order=work_order)
                .select_related("characteristic", "operation")
                .order_by("-seq")[:100]
            ),
            "nonconformances": list(
                work_order.nonconformances.select_related("operation").order_by("-opened_at")
            ),
        },
    )


@login_required
def work_order_traveler(request: HttpRequest, number: str) -> HttpResponse:
    """The printable traveler: a barcode for the order and one per operation, which the
    terminals' scanners open directly."""
    work_order = get_object_or_404(selectors.work_orders_with_operations(), number=number)
    operations = list(work_order.operations.all())
    return render(
        request,
        "mes/traveler.html",
        {
            "wo": work_order,
            "wo_barcode": mark_safe(code128_svg(work_order.number)),
            "rows": [
                (op, mark_safe(code128_svg(f"{work_order.number}/{op.sequence}")))
                for op in operations
            ],
            "printed_at": timezone.now(),
        },
    )
