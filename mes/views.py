"""Signed-in pages of the production domain: home, work order list and detail (where
supervisors and planners release, hold, cancel and change the priority), and the machines
(declared down or blocked by hand, and back up)."""

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
from django.views.decorators.http import require_http_methods

from erp_sync.delivery import delivery_lag
from shopfloor.choices import DeclaredKind
from shopfloor.downtime import declaration, declare_machine_down, declare_machine_up, reason_tree

from . import selectors, services
from .accounts import has_role
from .barcode import code128_svg
from .choices import Priority, Role, WorkOrderStatus
from .errors import DomainError, ValidationFailed
from .filters import WorkOrderFilter
from .formats import row_id
from .history import readable_history
from .models import Machine, WorkCenter, WorkOrder
from .quality.choices import NonconformanceStatus, Reaction
from .quality.models import InspectionResult
from .statemachine import WORK_ORDER_TERMINAL, WORK_ORDER_TRANSITIONS


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
@require_http_methods(["GET", "HEAD", "POST"])
def work_order_detail(request: HttpRequest, number: str) -> HttpResponse:
    """The order: facts, operations, quality, its history in words; supervisors and
    planners release, hold, cancel and change its priority here (POST)."""
    if request.method == "POST":
        if not has_role(request.user, *WORK_ORDER_ROLES):
            return HttpResponseForbidden(_("Work order actions are for supervisors and planners."))
        work_order = get_object_or_404(WorkOrder, number=number)
        _act_on_work_order(request, work_order)
        return redirect("work_order_detail", number=work_order.number)
    work_order = get_object_or_404(selectors.work_orders_with_operations(), number=number)
    rows = selectors.work_order_history_rows(work_order)
    nonconformances = list(
        work_order.nonconformances.select_related("operation").order_by("-opened_at")
    )
    # Open nonconformances that hold the order (the rule of quality's open_holds, on the
    # rows already loaded): only their disposition releases it, not a button.
    quality_holds = [
        nc
        for nc in nonconformances
        if nc.status == NonconformanceStatus.OPEN and nc.reaction == Reaction.HOLD_WORK_ORDER
    ]
    may_act = has_role(request.user, *WORK_ORDER_ROLES)
    return render(
        request,
        "mes/work_order_detail.html",
        {
            "wo": work_order,
            "operations": list(work_order.operations.all()),
            "history": readable_history(rows),
            "actions": (
                work_order_actions(work_order, held_by_quality=bool(quality_holds))
                if may_act
                else frozenset()
            ),
            "quality_holds": quality_holds,
            # The newest audit record shown: a POST tells what happened after it.
            "seen": max((row.id for row in rows), default=0),
            "now": timezone.now(),
            "results": list(
                InspectionResult.objects.filter(work_order=work_order)
                .select_related("characteristic", "operation")
                .order_by("-seq")[:100]
            ),
            "nonconformances": nonconformances,
        },
    )


# --- Work order actions: release, hold, release from hold, cancel, priority --------------------

WORK_ORDER_ROLES = (Role.SUPERVISOR, Role.PLANNER, Role.ADMIN)
WORK_ORDER_ACTIONS = frozenset({"release", "resume", "hold", "cancel", "priority"})


def work_order_actions(work_order: WorkOrder, *, held_by_quality: bool = False) -> frozenset[str]:
    """The actions the order's status allows (the transition table decides); an order held
    by quality is released by a disposition, not from here."""
    status, actions = work_order.status, set()
    allowed = WORK_ORDER_TRANSITIONS[status]
    if status == WorkOrderStatus.PLANNED:
        actions.add("release")
    if status == WorkOrderStatus.ON_HOLD and not held_by_quality:
        actions.add("resume")
    if WorkOrderStatus.ON_HOLD in allowed:
        actions.add("hold")
    if WorkOrderStatus.CANCELLED in allowed:
        actions.add("cancel")
    if status not in WORK_ORDER_TERMINAL:
        actions.add("priority")
    return frozenset(actions)


def _act_on_work_order(request: HttpRequest, work_order: WorkOrder) -> None:
    """A POST of the work order page, through the services; every outcome is a message.

    The form carries the order's ``version`` and the newest audit record the page showed
    (``seen``). The version also moves with every count, re-plan and operation step, which
    would make a running order's page stale within a minute; so when it moved, the page is
    out of date only if the order itself changed since (a release, hold, cancel or an ERP
    update, by anyone but the scheduler), and the message says who did what."""
    action = request.POST.get("action", "")
    if action not in WORK_ORDER_ACTIONS:
        messages.error(request, _("Nothing was asked; nothing was changed."))
        return
    version = _seen(request.POST.get("version"))
    if version is None:
        messages.error(request, _("The form was incomplete; nothing was changed. Look again."))
        return
    if version != work_order.version:
        change = selectors.last_change_of_work_order(
            work_order, after=_seen(request.POST.get("seen")) or 0
        )
        if change is not None:
            messages.error(
                request,
                services.describe_change(change, work_order.number)
                + ". "
                + _("Nothing was changed; look again."),
            )
            return
    number, before = work_order.number, work_order.status
    # The version just read: a change between this read and the service's lock is refused.
    common = {"actor": request.user, "expected_version": work_order.version}
    reason = request.POST.get("reason", "").strip()[:500]
    try:
        if action in ("release", "resume"):
            fresh = services.release_work_order(work_order, reason=reason, **common)
            if before == WorkOrderStatus.ON_HOLD:
                message = _("%(wo)s is released from hold: %(status)s again.") % {
                    "wo": number,
                    "status": fresh.get_status_display().lower(),
                }
            else:
                message = _("%(wo)s released.") % {"wo": number}
        elif action == "hold":
            services.hold_work_order(work_order, reason=reason, **common)
            message = _("%(wo)s put on hold: %(reason)s.") % {"wo": number, "reason": reason}
        elif action == "cancel":
            services.cancel_work_order(work_order, reason=reason, **common)
            message = _("%(wo)s cancelled.") % {"wo": number}
        else:
            priority = request.POST.get("priority", "")
            if priority not in Priority.values:
                messages.error(request, _("Choose a priority: normal or rush."))
                return
            _fresh, changed = services.update_work_order(work_order, priority=priority, **common)
            if not changed:
                message = _("%(wo)s already has that priority; nothing was changed.")
            elif priority == Priority.RUSH:
                message = _("%(wo)s is now a rush order.")
            else:
                message = _("%(wo)s is back to normal priority.")
            message %= {"wo": number}
    except DomainError as exc:
        messages.error(request, exc.message)
        return
    messages.success(request, message)


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
    return row_id(raw) or None


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
