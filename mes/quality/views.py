"""Supervisors' quality pages: nonconformances with their signed dispositions, and SPC
per characteristic. Views authorise, call a selector or service, and render."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mes.accounts import has_role
from mes.choices import Role
from mes.errors import DomainError

from . import selectors, services
from .charts import control_chart_svg
from .choices import Disposition, NonconformanceStatus, SignatureMeaning

VIEWERS = (Role.SUPERVISOR, Role.PLANNER, Role.ADMIN)
SIGNERS = (Role.SUPERVISOR, Role.ADMIN)
INLINE_ERRORS = ("password", "quantity")


def quality_view(*roles: str):
    """Signed in with one of ``roles``; operators use the terminals."""

    def decorate(view):
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not has_role(request.user, *roles):
                return HttpResponseForbidden(_("Quality pages are for supervisors and planners."))
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


@quality_view(*VIEWERS)
def nonconformance_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", NonconformanceStatus.OPEN)
    if status not in (*NonconformanceStatus.values, "all"):
        status = NonconformanceStatus.OPEN
    rows = selectors.nonconformances(None if status == "all" else status)
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "quality/nonconformance_list.html",
        {"page": page, "status": status, "statuses": NonconformanceStatus.choices},
    )


@quality_view(*VIEWERS)
def nonconformance_detail(request: HttpRequest, number: str) -> HttpResponse:
    nc = get_object_or_404(selectors.nonconformances(), number=number)
    errors: dict = {}
    if request.method == "POST":
        if not has_role(request.user, *SIGNERS):
            return HttpResponseForbidden(_("Only a supervisor can sign a disposition."))
        try:
            services.disposition_nonconformance(
                nc,
                decision=request.POST.get("decision", ""),
                quantity=request.POST.get("quantity") or None,
                comment=request.POST.get("comment", "")[:2000],
                meaning=request.POST.get("meaning", ""),
                password=request.POST.get("password", ""),
                signer=request.user,
            )
        except DomainError as exc:
            # Shown beside its field where the form has one, else at the top of the page.
            errors = {k: v for k, v in exc.errors.items() if k in INLINE_ERRORS}
            if not errors:
                messages.error(request, exc.message)
        else:
            messages.success(request, _("%(nc)s dispositioned and signed.") % {"nc": nc.number})
            return redirect("quality:nonconformance", number=nc.number)
    versions = list(selectors.versions_of(nc.result).select_related("machine"))
    signatures = [(s, services.signature_is_valid(s)) for s in nc.signatures.all()]
    return render(
        request,
        "quality/nonconformance_detail.html",
        {
            "nc": nc,
            "versions": versions,
            "signatures": signatures,
            "decisions": Disposition.choices,
            "meanings": SignatureMeaning.choices,
            "can_sign": has_role(request.user, *SIGNERS),
            "is_recorder": any(v.recorded_by_id == request.user.pk for v in versions),
            "form": request.POST if request.method == "POST" else {},
            "errors": errors,
        },
    )


@quality_view(*VIEWERS)
def spc_list(request: HttpRequest) -> HttpResponse:
    return render(request, "quality/spc_list.html", {"rows": selectors.series_summaries()})


@quality_view(*VIEWERS)
def spc_detail(request: HttpRequest, routing: str, sequence: int, code: str) -> HttpResponse:
    page = selectors.series_page(routing, sequence, code)
    if page is None:
        raise Http404
    charts = []
    if page.analysis is not None and page.analysis.limits is not None:
        limits, analysis = page.analysis.limits, page.analysis
        flagged = {v.index for v in analysis.violations}
        labels = [f"{row[3]} · {row[2]}" for row in page.rows]
        charts.append(
            mark_safe(  # built by charts.control_chart_svg, which escapes every text
                control_chart_svg(
                    title=(_("Individuals") if limits.kind == "imr" else _("Sample means")),
                    points=analysis.points,
                    center=limits.center,
                    ucl=limits.ucl,
                    lcl=limits.lcl,
                    flagged=flagged,
                    labels=labels,
                    unit=page.unit,
                    spec=(page.lower, page.upper),
                )
            )
        )
        ranges = [r if r is not None else float("nan") for r in analysis.ranges]
        charts.append(
            mark_safe(
                control_chart_svg(
                    title=(_("Moving range") if limits.kind == "imr" else _("Range")),
                    points=ranges,
                    center=limits.range_center,
                    ucl=limits.range_ucl,
                    lcl=limits.range_lcl,
                    labels=labels,
                    unit=page.unit,
                    height=180,
                )
            )
        )
    elif page.rows:
        charts.append(
            mark_safe(
                control_chart_svg(
                    title=_("Individuals"),
                    points=[sum(r[1]) / len(r[1]) for r in page.rows],
                    center=None,
                    ucl=None,
                    lcl=None,
                    unit=page.unit,
                )
            )
        )
    return render(
        request,
        "quality/spc_detail.html",
        {"page": page, "charts": charts, "can_freeze": has_role(request.user, *SIGNERS)},
    )


@require_POST
@quality_view(*SIGNERS)
def spc_baseline(request: HttpRequest, routing: str, sequence: int, code: str) -> HttpResponse:
    page = selectors.series_page(routing, sequence, code, window=1)
    if page is None:
        raise Http404
    try:
        if request.POST.get("action") == "release":
            services.release_baseline(page.series, actor=request.user)
            messages.success(request, _("Control limits come from the data again."))
        else:
            services.freeze_baseline(page.series, actor=request.user)
            messages.success(request, _("Control limits frozen."))
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("quality:spc_detail", routing=routing, sequence=sequence, code=code)
