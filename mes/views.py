"""Signed-in pages of the production domain: home, work order list and detail, and the
machines (declared down or blocked by hand, and back up)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from erp_sync.delivery import delivery_lag
from shopfloor.choices import DeclaredKind
from shopfloor.downtime import declaration, declare_machine_down, declare_machine_up, reason_tree

from . import selectors
from .accounts import has_role
from .barcode import code128_svg
from .choices import Role, WorkOrderStatus
from .errors import DomainError, ValidationFailed
from .filters import WorkOrderFilter
from .models import Machine, WorkCenter
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


# --- Machines: declared down or blocked by hand -------------------------------------------------

MACHINE_ROLES = (Role.SUPERVISOR, Role.PLANNER, Role.ADMIN)
# When a machine declared down is expected back, in minutes from now ("": not known).
BACK_IN = [
    ("", gettext_lazy("Not known")),
    ("15", gettext_lazy("in 15 min")),
    ("30", gettext_lazy("in 30 min")),
    ("60", gettext_lazy("in 1 h")),
    ("120", gettext_lazy("in 2 h")),
    ("240", gettext_lazy("in 4 h")),
    ("480", gettext_lazy("in 8 h")),
    ("1440", gettext_lazy("in 1 day")),
]
BACK_IN_MINUTES = {value: int(value) for value, _label in BACK_IN if value}


def _site_zone(work_center: WorkCenter) -> tzinfo:
    """The time zone of the work center's site (the plant's clock), else the server's."""
    try:
        return zoneinfo.ZoneInfo(work_center.area.site.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_current_timezone()


def _expected_back(request: HttpRequest, zone: tzinfo, now: datetime) -> datetime | None:
    """From the form: a date and time on the site's clock (``back_at``, a datetime-local
    input) or minutes from now (``back_in``); neither: not known."""
    raw = request.POST.get("back_at", "").strip()[:40]
    if raw:
        try:
            local = datetime.fromisoformat(raw)
            if local.tzinfo is not None:
                raise ValueError("a local time has no offset")
            # To UTC at once: a time at the edge of the calendar (year 1, 9999) fails here.
            return local.replace(tzinfo=zone).astimezone(UTC)
        except (ValueError, OverflowError):
            raise ValidationFailed.field(
                "back_at", _("“%(value)s” is not a date and time.") % {"value": raw}
            ) from None
    minutes = request.POST.get("back_in", "")
    if minutes and minutes not in BACK_IN_MINUTES:
        raise ValidationFailed.field("back_in", _("Choose when the machine is expected back."))
    return now + timedelta(minutes=BACK_IN_MINUTES[minutes]) if minutes else None


def _seen(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _declare(request: HttpRequest) -> None:
    """A POST of the machines page: declare a machine down or blocked, or back up."""
    machine = (
        Machine.objects.filter(code=request.POST.get("machine", "")[:64], is_active=True)
        .select_related("work_center__area__site")
        .first()
    )
    if machine is None:
        messages.error(request, _("No such machine in use; nothing was changed."))
        return
    seen = _seen(request.POST.get("seen"))
    action = request.POST.get("action", "")
    try:
        if action == "up":
            fresh = declare_machine_up(
                machine, actor=request.user, note=request.POST.get("note", "")[:600], seen=seen
            )
            messages.success(
                request,
                _("%(machine)s is back up (%(state)s).")
                % {"machine": machine.code, "state": fresh.get_state_display().lower()},
            )
        elif action == "down":
            now = timezone.now()
            record = declare_machine_down(
                machine,
                actor=request.user,
                kind=request.POST.get("kind", ""),
                code=request.POST.get("reason", "")[:64],
                note=request.POST.get("note", "")[:600],
                expected_back=_expected_back(request, _site_zone(machine.work_center), now),
                at=now,
                seen=seen,
            )
            messages.success(
                request,
                _("%(machine)s declared %(kind)s: %(reason)s.")
                % {
                    "machine": machine.code,
                    "kind": DeclaredKind(request.POST["kind"]).label.lower(),
                    "reason": record.reason,
                },
            )
        else:
            messages.error(request, _("Nothing was asked; nothing was changed."))
    except DomainError as exc:
        messages.error(request, f"{machine.code}: {exc.message}")


@login_required
def machine_list(request: HttpRequest) -> HttpResponse:
    """Active machines by work center: state, since when, what was declared; supervisors
    and planners declare a machine down or blocked, and back up."""
    if not has_role(request.user, *MACHINE_ROLES):
        return HttpResponseForbidden(_("The machines page is for supervisors and planners."))
    if request.method == "POST":
        _declare(request)
        return redirect("machine_list")
    machines = list(
        Machine.objects.filter(is_active=True)
        .select_related("work_center__area__site")
        .order_by("work_center__code", "code")
    )
    declared = declaration([m.pk for m in machines])
    now = timezone.now()
    groups: list[dict] = []
    for machine in machines:
        if not groups or groups[-1]["work_center"].pk != machine.work_center_id:
            zone = _site_zone(machine.work_center)
            groups.append(
                {
                    "work_center": machine.work_center,
                    "zone": zone,
                    "now_local": f"{timezone.localtime(now, zone):%Y-%m-%dT%H:%M}",
                    "rows": [],
                }
            )
        groups[-1]["rows"].append({"machine": machine, "declared": declared.get(machine.pk)})
    return render(
        request,
        "mes/machines.html",
        {
            "groups": groups,
            "tree": reason_tree(),
            "kinds": DeclaredKind.choices,
            "back_in": BACK_IN,
        },
    )
