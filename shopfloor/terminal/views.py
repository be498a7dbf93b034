"""Operator terminal screens (server-rendered, htmx). Every action goes through the
services of mes; this module only authorises, parses, and renders."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal
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
from mes.errors import DomainError, StaleObject
from mes.formats import display_quantity, parse_decimal, row_id
from mes.metrics import TERMINAL_ACTIONS
from mes.models import Machine, WorkCenter
from mes.quality import selectors as quality_selectors
from mes.quality import services as quality_services
from mes.quality.models import ScrapReason
from shopfloor.choices import DeclaredKind, DowntimeCause
from shopfloor.downtime import declaration as downtime_declaration
from shopfloor.downtime import (
    declare_machine_down,
    declare_machine_up,
    reason_tree,
    set_downtime_reason,
)
from shopfloor.models import DowntimeRecord

from . import selectors, session
from . import services as terminal_services
from .models import FormToken, Terminal

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
            if request.method == "POST":
                TERMINAL_ACTIONS.labels(view.__name__).inc()
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


def _may_enrol(user) -> bool:
    return has_role(user, Role.SUPERVISOR, Role.ADMIN)


@login_required
def setup(request: HttpRequest) -> HttpResponse:
    """A supervisor enrols this browser as a terminal at a work center, and sees (and
    revokes) the terminals enrolled so far."""
    if not _may_enrol(request.user):
        return HttpResponseForbidden(_("Only a supervisor can set up a terminal."))
    centers = WorkCenter.objects.select_related("area").order_by("area__code", "code")
    current = session.current_terminal(request)
    if request.method == "POST":
        work_center = centers.filter(code=request.POST.get("work_center", "")).first()
        if work_center is None:
            messages.error(request, _("Choose a work center."))
        else:
            try:
                _terminal, token = terminal_services.enrol_terminal(
                    work_center=work_center,
                    name=request.POST.get("name", ""),
                    actor=request.user,
                    replacing=current,
                )
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                # The supervisor's own sign-in must not stay behind on a shared terminal.
                auth.logout(request)
                response = redirect("terminal:home")
                session.bind(response, token)
                return response
    return render(
        request,
        "terminal/setup.html",
        {
            "centers": centers,
            "current": current,
            "terminals": selectors.enrolled_terminals(),
        },
    )


@login_required
@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    if not _may_enrol(request.user):
        return HttpResponseForbidden(_("Only a supervisor can revoke a terminal."))
    terminal = get_object_or_404(Terminal, pk=pk)
    try:
        terminal_services.revoke_terminal(terminal, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Terminal %(name)s is revoked: its screen goes back to setup.")
            % {"name": terminal.name},
        )
    return redirect("terminal:setup")


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
    terminal = session.current_terminal(request)
    if terminal is None:
        return redirect("terminal:setup")
    badge = session.clean_badge(request.POST.get("badge"))
    try:
        user = session.check_sign_in(badge, request.POST.get("pin", ""), terminal)
    except session.SignInRefused as exc:
        return render(
            request,
            "terminal/sign_in.html",
            _context(request, work_center=terminal.work_center, badge=badge, error=str(exc)),
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
    checks = quality_selectors.checks_of(op)
    holds = quality_selectors.holds_on(op)
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
        scrap_reasons=ScrapReason.objects.filter(active=True),
        running_seconds=_running_seconds(op),
        due_checks=quality_selectors.due_checks(op, checks=checks),
        quality_holds=holds,
        has_checks=bool(checks),
        # What the actions depend on; the poll re-renders them when it changes.
        live_key=f"{op.status}:{op.work_order.status}{':held' if holds else ''}",
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
    context = _operation_context(request, op, polled=True)
    context["oob_actions"] = request.GET.get("status", "") != context["live_key"]
    return render(request, "terminal/partials/operation_live.html", context)


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
    value = parse_decimal(raw or "0")  # ASCII digits only: no 1e999999999, NaN or "١٢"
    if value is None:
        raise DomainError(_("%(label)s must be a number.") % {"label": label})
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
        chosen = request.POST.get("scrap_reason", "") if scrap else ""
        scrap_reason = (
            ScrapReason.objects.filter(active=True, code=chosen).first() if chosen else None
        )
        if scrap and scrap_reason is None:
            raise DomainError(_("Choose a scrap reason."))
        services.report_quantity(
            op,
            actor=operator,
            good=good,
            scrap=scrap,
            reason=scrap_reason.text if scrap_reason else "",
            scrap_reason=scrap_reason.code if scrap_reason else "",
        )
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


# --- Quality checks ---------------------------------------------------------------------------


def _check_context(request: HttpRequest, op, *, chosen=None, **extra) -> dict:
    checks = quality_selectors.checks_of(op)
    due = quality_selectors.due_checks(op, checks=checks)
    if chosen is None:
        wanted = request.GET.get("check") or request.POST.get("check")
        chosen = next((c for c in checks if str(c.pk) == wanted), None)
    if chosen is None:
        chosen = due[0].check if due else (checks[0] if checks else None)
    sample = next((d.sample for d in due if chosen and d.check.pk == chosen.pk), None)
    if sample is None and chosen is not None and not request.GET.get("extra"):
        # Nothing else is due: the last piece is what is left to record (Complete asks
        # for it), unless the operator asks for an extra sample.
        pending = quality_selectors.due_checks(op, completing=True, checks=checks)
        sample = next((d.sample for d in pending if d.check.pk == chosen.pk), None)
    correcting = None
    if row_id(request.GET.get("correct")):
        correcting = (
            quality_selectors.results_of(op)
            .filter(pk=row_id(request.GET["correct"]), is_current=True)
            .first()
        )
        if correcting is not None:
            chosen = correcting.characteristic
    return _context(
        request,
        op=op,
        wo=op.work_order,
        checks=checks,
        due_checks=due,
        chosen=chosen,
        sample=sample,
        sample_text=quality_selectors.sample_display(sample.key) if sample else "",
        correcting=correcting,
        sizes=range(chosen.sample_size) if chosen else range(0),
        results=list(quality_selectors.results_of(op).order_by("-seq")[:30]),
        quality_holds=quality_selectors.holds_on(op),
        token=secrets.token_hex(16),
        **extra,
    )


@terminal_view
def check(request: HttpRequest, pk: int) -> HttpResponse:
    """The check screen: the spec, the value on the keypad, the verdict at once."""
    op = _operation_or_404(pk)
    if request.method != "POST":
        return render(request, "terminal/check.html", _check_context(request, op))
    if op.work_center_id != request.terminal_wc.pk:
        message = _("This step is done at %(wc)s; use the terminal there.") % {
            "wc": op.work_center.code
        }
        return render(
            request,
            "terminal/check.html",
            _check_context(request, op, message=message, level="error"),
        )
    check_obj = op.checks.filter(pk=row_id(request.POST.get("check"))).first()
    token = request.POST.get("token", "")[:64] or secrets.token_hex(16)
    extra: dict = {}
    try:
        if check_obj is None:
            raise DomainError(_("Choose a check."))
        if check_obj.is_variable:
            values = [request.POST.get(f"value-{i}", "") for i in range(check_obj.sample_size)]
        else:
            values = [request.POST.get("verdict", "")]
        with transaction.atomic():
            FormToken.objects.create(token=token)
            correct = request.POST.get("correct")
            if correct:
                original = get_object_or_404(
                    quality_selectors.results_of(op), pk=row_id(correct), characteristic=check_obj
                )
                result = quality_services.correct_result(
                    original,
                    values=values,
                    reason=request.POST.get("reason", ""),
                    defect_code=request.POST.get("defect_code", ""),
                    actor=request.operator,
                )
            else:
                result = quality_services.record_result(
                    op,
                    check=check_obj,
                    values=values,
                    sample_key=request.POST.get("sample", ""),
                    defect_code=request.POST.get("defect_code", ""),
                    actor=request.operator,
                )
            FormToken.objects.filter(token=token).update(outcome=f"result {result.seq}")
        extra["verdict"] = result
        extra["opened"] = result.nonconformances.first()
    except IntegrityError:
        extra.update(message=_("Already recorded."), level="info")
    except DomainError as exc:
        extra.update(message=exc.message, level="error")
    return render(
        request,
        "terminal/check.html",
        _check_context(request, _operation_or_404(pk), chosen=check_obj, **extra),
    )


# --- Machine availability: declared down or blocked, and back up -------------------------------

# When a machine declared down is expected back, as the operator taps it (minutes ahead).
EXPECTED_BACK_CHOICES = [
    ("15", gettext_lazy("15 min")),
    ("30", gettext_lazy("30 min")),
    ("60", gettext_lazy("1 h")),
    ("120", gettext_lazy("2 h")),
    ("240", gettext_lazy("4 h")),
    ("unknown", gettext_lazy("Not known")),
]
EXPECTED_BACK_MINUTES = {value: int(value) for value, _label in EXPECTED_BACK_CHOICES[:-1]}


def _machine_here_or_404(request: HttpRequest, code: str) -> Machine:
    machine = selectors.machine_here(code, request.terminal_wc)
    if machine is None:
        raise Http404
    return machine


def _seen(raw: str | None) -> int | None:
    """The declaration a form was rendered with (its record id; none: None)."""
    return row_id(raw) or None


def _declare_step(request: HttpRequest, machine: Machine, **extra) -> HttpResponse:
    """The declare screen, one choice per step: kind, category, reason, expected return.
    The first three are links (GET), the last submits the form."""
    params = request.POST if request.method == "POST" else request.GET
    tree = reason_tree()
    kind = params.get("kind", "")
    if kind not in DeclaredKind.values:
        kind = ""
    category = next((c for c, _r in tree if c.code == params.get("category", "")), None)
    reasons = next((r for c, r in tree if category is not None and c.pk == category.pk), [])
    reason = next((r for r in reasons if r.code == params.get("reason", "")), None)
    current = downtime_declaration([machine.pk]).get(machine.pk)
    return render(
        request,
        "terminal/machine_down.html",
        _context(
            request,
            machine=machine,
            kinds=[
                (DeclaredKind.DOWN, "■", _("Broken or being repaired")),
                (DeclaredKind.BLOCKED, "⊘", _("Sound, but cannot work: no material, no staff")),
            ],
            kind=kind,
            kind_label=DeclaredKind(kind).label if kind else "",
            tree=tree,
            category=category,
            reasons=reasons,
            reason=reason,
            current=current,
            backs=EXPECTED_BACK_CHOICES,
            token=secrets.token_hex(16),
            **extra,
        ),
    )


@terminal_view
def machine_down(request: HttpRequest, code: str) -> HttpResponse:
    """Declare a machine of this work center down or blocked: why, and when it is back."""
    machine = _machine_here_or_404(request, code)
    if request.method != "POST":
        return _declare_step(request, machine)
    back = request.POST.get("back", "")
    token = request.POST.get("token", "")[:64] or secrets.token_hex(16)
    try:
        if back not in EXPECTED_BACK_MINUTES and back != "unknown":
            raise DomainError(_("Tap when the machine is expected back, or “Not known”."))
        now = timezone.now()
        minutes = EXPECTED_BACK_MINUTES.get(back)
        with transaction.atomic():
            FormToken.objects.create(token=token)
            record = declare_machine_down(
                machine,
                actor=request.operator,
                kind=request.POST.get("kind", ""),
                code=request.POST.get("reason", "")[:64],
                expected_back=now + timedelta(minutes=minutes) if minutes else None,
                at=now,
                seen=_seen(request.POST.get("seen")),
            )
            message = _declared_message(record.machine, record)
            FormToken.objects.filter(token=token).update(outcome=message)
    except IntegrityError:
        used = FormToken.objects.filter(token=token).first()
        messages.info(
            request, _("Already done: ") + (used.outcome if used and used.outcome else _("sent"))
        )
    except StaleObject as exc:  # someone declared it meanwhile: the tile shows what
        messages.error(request, exc.message)
    except DomainError as exc:
        return _declare_step(request, machine, message=exc.message)
    else:
        messages.success(request, message)
    return _go(request, reverse("terminal:home"))


def _declared_message(machine: Machine, record: DowntimeRecord) -> str:
    back = selectors.expected_back_label(machine.expected_back_at)
    words = {"machine": machine.code, "reason": record.reason, "back": back}
    if record.cause == DowntimeCause.BLOCKED:
        if back:
            return _("%(machine)s declared blocked: %(reason)s. Back about %(back)s.") % words
        return _("%(machine)s declared blocked: %(reason)s.") % words
    if back:
        return _("%(machine)s declared down: %(reason)s. Back about %(back)s.") % words
    return _("%(machine)s declared down: %(reason)s.") % words


@terminal_view
def machine_up(request: HttpRequest, code: str) -> HttpResponse:
    """Asks in words whether the machine is back up (GET); the answer (POST) declares it."""
    machine = _machine_here_or_404(request, code)
    current = downtime_declaration([machine.pk]).get(machine.pk)
    if request.method != "POST":
        return render(
            request,
            "terminal/machine_up.html",
            _context(
                request,
                machine=machine,
                current=current,
                back=selectors.expected_back_label(machine.expected_back_at),
                token=secrets.token_hex(16),
            ),
        )
    token = request.POST.get("token", "")[:64] or secrets.token_hex(16)
    try:
        with transaction.atomic():
            FormToken.objects.create(token=token)
            fresh = declare_machine_up(
                machine, actor=request.operator, seen=_seen(request.POST.get("seen"))
            )
            message = _("%(machine)s is back up (%(state)s).") % {
                "machine": machine.code,
                "state": fresh.get_state_display().lower(),
            }
            FormToken.objects.filter(token=token).update(outcome=message)
    except IntegrityError:
        used = FormToken.objects.filter(token=token).first()
        messages.info(
            request, _("Already done: ") + (used.outcome if used and used.outcome else _("sent"))
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, message)
    return _go(request, reverse("terminal:home"))
