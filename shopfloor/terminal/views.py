"""Operator terminal screens (server-rendered, htmx). Every action goes through the
services of mes; this module only authorises, parses, and renders."""

from __future__ import annotations

import secrets
from decimal import Decimal, InvalidOperation
from functools import wraps

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from mes import services
from mes.accounts import has_role
from mes.choices import EntityType, OperationStatus, Role
from mes.errors import DomainError
from mes.formats import display_quantity
from mes.models import Machine, OperatorProfile, WorkCenter
from shopfloor.downtime import reason_tree, set_downtime_reason
from shopfloor.models import DowntimeRecord

from . import selectors, session
from .models import FormToken

Op = OperationStatus
# Stored in English (the audit trail is read by everyone); shown in the terminal's language.
PAUSE_REASONS = [
    (reason, gettext_lazy(reason))
    for reason in (
        "Waiting for material",
        "Tool change",
        "Break",
        "Quality check",
        "Machine problem",
        "Waiting for instructions",
    )
]
PAUSE_REASON_VALUES = {value for value, _label in PAUSE_REASONS}
SCRAP_REASONS = [
    (reason, gettext_lazy(reason))
    for reason in (
        "Dimension out of tolerance",
        "Surface defect",
        "Material defect",
        "Setup part",
        "Other",
    )
]


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """Redirect, also for htmx requests (which would otherwise swap the target)."""
    if _is_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def terminal_view(view=None, *, poll: bool = False):
    """The browser must be bound to a work center; an operator must be signed in. What the
    operator opens or taps keeps the sign-in alive; background refreshes (``poll``) do not."""

    def decorate(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            work_center = session.bound_work_center(request)
            if work_center is None:
                return _go(request, reverse("terminal:setup"))
            operator = session.current_operator(request)
            if operator is None:
                return _go(request, reverse("terminal:home"))
            request.terminal_wc, request.operator = work_center, operator
            if not poll:
                session.touch(request)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def _context(request: HttpRequest, **extra) -> dict:
    return {
        "work_center": getattr(request, "terminal_wc", None),
        "operator": getattr(request, "operator", None),
        "poll_ms": settings.MES_TERMINAL_POLL_MS,
        "idle_seconds": settings.MES_TERMINAL_IDLE_SECONDS,
        **extra,
    }


# --- Setup and sign-in ------------------------------------------------------------------------


@login_required
def setup(request: HttpRequest) -> HttpResponse:
    """A supervisor binds this browser to a work center (remembered in a cookie)."""
    if not has_role(request.user, Role.SUPERVISOR, Role.ADMIN):
        return HttpResponseForbidden(_("Only a supervisor can set up a terminal."))
    centers = WorkCenter.objects.select_related("area").order_by("area__code", "code")
    if request.method == "POST":
        work_center = centers.filter(code=request.POST.get("work_center", "")).first()
        if work_center is None:
            messages.error(request, _("Choose a work center."))
        else:
            # The supervisor's own sign-in must not stay behind on a shared terminal.
            auth.logout(request)
            response = redirect("terminal:home")
            session.bind(response, work_center)
            return response
    return render(
        request,
        "terminal/setup.html",
        {
            "centers": centers,
            "current": session.bound_work_center(request),
        },
    )


def home(request: HttpRequest) -> HttpResponse:
    """Sign-in when nobody is signed in, else the work center view."""
    work_center = session.bound_work_center(request)
    if work_center is None:
        return redirect("terminal:setup")
    operator = session.current_operator(request)
    if operator is None:
        idle = request.session.pop("terminal_idle_out", False)
        return render(
            request,
            "terminal/sign_in.html",
            _context(
                request,
                work_center=work_center,
                step="badge",
                notice=_("You were signed out after a while without use.") if idle else "",
            ),
        )
    request.terminal_wc, request.operator = work_center, operator
    session.touch(request)
    return render(
        request, "terminal/work_center.html", _context(request, **_work_center_data(work_center))
    )


@require_POST
def sign_in(request: HttpRequest) -> HttpResponse:
    work_center = session.bound_work_center(request)
    if work_center is None:
        return redirect("terminal:setup")
    badge = request.POST.get("badge", "").strip()
    pin = request.POST.get("pin")
    known = OperatorProfile.objects.select_related("user").filter(badge=badge).first()
    context = _context(
        request, work_center=work_center, badge=badge, name=known.user.first_name if known else ""
    )
    try:
        if pin is None:
            profile = session.check_badge(badge, work_center.code)
            if profile.has_pin:
                return render(request, "terminal/sign_in.html", {**context, "step": "pin"})
            user = profile.user
        else:
            user = session.check_pin(badge, pin, work_center.code)
    except session.SignInRefused as exc:
        step = "pin" if pin is not None else "badge"
        return render(
            request,
            "terminal/sign_in.html",
            {**context, "step": step, "error": str(exc)},
            status=200,
        )
    session.sign_in(request, user)
    return redirect("terminal:home")


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    session.sign_out(request)
    return _go(request, reverse("terminal:home"))


# --- Work center ------------------------------------------------------------------------------


def _work_center_data(work_center: WorkCenter) -> dict:
    return {
        "tiles": selectors.machine_tiles(work_center),
        "queue": selectors.dispatch_queue(work_center),
        "now": timezone.now(),
    }


@terminal_view(poll=True)
def work_center_panel(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "terminal/partials/work_center_live.html",
        _context(request, **_work_center_data(request.terminal_wc)),
    )


# --- Operation --------------------------------------------------------------------------------


def _operation_or_404(pk: int):
    op = selectors.operation_for_terminal(pk)
    if op is None:
        raise Http404
    return op


def _operation_context(request: HttpRequest, op, **extra) -> dict:
    machines = list(Machine.objects.filter(work_center_id=op.work_center_id, is_active=True))
    busy = set(
        machines
        and selectors.Operation.objects.filter(machine__in=machines, status=Op.RUNNING).values_list(
            "machine_id", flat=True
        )
    )
    return _context(
        request,
        op=op,
        wo=op.work_order,
        machines=machines,
        busy=busy,
        free_machine=next((m for m in machines if m.pk not in busy), None),
        token=secrets.token_hex(16),
        pause_reasons=PAUSE_REASONS,
        scrap_reasons=SCRAP_REASONS,
        running_seconds=_running_seconds(op),
        **extra,
    )


def _running_seconds(op) -> int:
    total = op.run_seconds
    if op.running_since is not None:
        total += Decimal((timezone.now() - op.running_since).total_seconds())
    return int(total)


@terminal_view
def operation(request: HttpRequest, pk: int) -> HttpResponse:
    op = _operation_or_404(pk)
    return render(request, "terminal/operation.html", _operation_context(request, op))


@terminal_view(poll=True)
def operation_live(request: HttpRequest, pk: int) -> HttpResponse:
    """Polled: status and counts; the actions too, out of band, when the status changed
    (so a quantity being typed is not wiped by a refresh)."""
    op = _operation_or_404(pk)
    shown = request.GET.get("status", "")
    changed = shown != f"{op.status}:{op.work_order.status}"
    return render(
        request,
        "terminal/partials/operation_live.html",
        _operation_context(request, op, oob_actions=changed),
    )


ACTIONS = {"start", "pause", "resume", "report", "complete"}


@require_POST
@terminal_view
def act(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404
    op = _operation_or_404(pk)
    if op.work_center_id != request.terminal_wc.pk:
        message = _("This step is done at %(wc)s; use the terminal there.") % {
            "wc": op.work_center.code
        }
        return _render_actions(request, op, message=message, level="error")
    token = request.POST.get("token", "")[:64]
    rendered_status = request.POST.get("status", "")
    # Completing short of the target asks first, in words.
    short = op.quantity_good < op.work_order.quantity and op.status in (Op.RUNNING, Op.PAUSED)
    if action == "complete" and short and not request.POST.get("confirmed"):
        return _render_actions(request, op, confirm_complete=True)
    # Pausing asks why on a screen of its own (one tap per reason), so the actions stay
    # above the fold.
    if action == "pause" and op.status == Op.RUNNING:
        reason = request.POST.get("reason", "")
        if reason not in PAUSE_REASON_VALUES:
            extra = {"message": _("Choose a pause reason."), "level": "error"} if reason else {}
            return _render_actions(request, op, choose_pause_reason=True, **extra)
    token = token or secrets.token_hex(16)  # without a token the form was not ours
    try:
        with transaction.atomic():
            # Used once: a retried submission of the same form hits the primary key.
            FormToken.objects.create(token=token)
            message = _perform(request, op, action)
            FormToken.objects.filter(token=token).update(outcome=message)
        level = "success"
    except IntegrityError:
        used = FormToken.objects.filter(token=token).first()
        message = _("Already done: ") + (used.outcome if used and used.outcome else _("sent"))
        level = "info"
    except DomainError as exc:
        fresh = _operation_or_404(pk)
        message = exc.message
        shown = rendered_status.partition(":")[0]
        if shown and shown != fresh.status:  # someone else changed it since it was shown
            last = services.describe_last_change(EntityType.OPERATION, fresh.pk, fresh.label)
            message = f"{last}. " + _("Nothing was changed.")
        level = "error"
    return _render_actions(request, _operation_or_404(pk), message=message, level=level)


def _render_actions(request, op, **extra) -> HttpResponse:
    context = _operation_context(request, op, **extra)
    if _is_htmx(request):
        return render(request, "terminal/partials/operation_body.html", context)
    return render(request, "terminal/operation.html", context)


def _quantity(raw: str, label: str) -> Decimal:
    try:
        value = Decimal((raw or "0").strip().replace(",", "."))
    except InvalidOperation:
        raise DomainError(_("%(label)s must be a number.") % {"label": label}) from None
    return value


def _perform(request: HttpRequest, op, action: str) -> str:
    operator = request.operator
    if action == "start":
        machine = None
        if request.POST.get("machine"):
            machine = Machine.objects.filter(code=request.POST["machine"]).first()
        started = services.start_operation(op, operator=operator, machine=machine)
        where = f" on {started.machine.code}" if started.machine_id else ""
        return _("Started %(op)s%(where)s.") % {"op": op.label, "where": where}
    if action == "pause":
        services.pause_operation(op, actor=operator, reason=request.POST.get("reason", ""))
        return _("Paused %(op)s.") % {"op": op.label}
    if action == "resume":
        services.resume_operation(op, actor=operator)
        return _("Resumed %(op)s.") % {"op": op.label}
    if action == "report":
        good = _quantity(request.POST.get("good"), _("Good quantity"))
        scrap = _quantity(request.POST.get("scrap"), _("Scrap quantity"))
        reason = request.POST.get("scrap_reason", "") if scrap else ""
        if scrap and not reason:
            raise DomainError(_("Choose a scrap reason."))
        services.report_quantity(op, actor=operator, good=good, scrap=scrap, reason=reason)
        return _("Reported %(good)s good and %(scrap)s scrap on %(op)s.") % {
            "good": display_quantity(good),
            "scrap": display_quantity(scrap),
            "op": op.label,
        }
    services.complete_operation(op, actor=operator)
    return _("Completed %(op)s.") % {"op": op.label}


# --- Downtime reasons and scanning ------------------------------------------------------------


@terminal_view
def downtime(request: HttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(
        DowntimeRecord.objects.select_related("machine"),
        pk=pk,
        machine__work_center=request.terminal_wc,
    )
    if request.method == "POST":
        code = request.POST.get("reason", "")
        try:
            if not code:
                raise DomainError(_("Choose a reason."))
            set_downtime_reason(record, code=code, actor=request.operator)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request, _("Reason saved for %(machine)s.") % {"machine": record.machine.code}
            )
            return _go(request, reverse("terminal:home"))
    return render(
        request,
        "terminal/downtime.html",
        _context(
            request,
            record=record,
            tree=reason_tree(),
            category=request.GET.get("category", ""),
        ),
    )


@terminal_view
def scan(request: HttpRequest) -> HttpResponse:
    code = request.GET.get("code", "")
    op = selectors.resolve_scan(code, request.terminal_wc)
    if op is None:
        messages.error(
            request,
            _("Nothing known as “%(code)s”. Scan a traveler barcode.") % {"code": code[:40]},
        )
        return _go(request, reverse("terminal:home"))
    return _go(request, reverse("terminal:operation", args=[op.pk]))
