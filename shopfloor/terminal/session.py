"""Who and where a shared terminal is: the work center this browser is bound to (a signed,
long-lived cookie set by a supervisor) and the operator signed in on it (in the session,
signed out after a configurable idle time)."""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from mes.accounts import operator_by_badge
from mes.models import OperatorProfile, WorkCenter

from .models import SignInFailure

COOKIE = "mes_terminal"
COOKIE_SALT = "mes.terminal.bind"
COOKIE_AGE = 5 * 365 * 24 * 3600
SESSION_KEY = "terminal_operator"


def bound_work_center(request: HttpRequest) -> WorkCenter | None:
    code = request.get_signed_cookie(COOKIE, default=None, salt=COOKIE_SALT)
    if not code:
        return None
    return WorkCenter.objects.select_related("area").filter(code=code).first()


def bind(response: HttpResponse, work_center: WorkCenter) -> None:
    response.set_signed_cookie(
        COOKIE,
        work_center.code,
        salt=COOKIE_SALT,
        max_age=COOKIE_AGE,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


def current_operator(request: HttpRequest) -> AbstractBaseUser | None:
    """The signed-in operator, or None (also after the idle time, which signs them out and
    leaves a note for the sign-in screen)."""
    data = request.session.get(SESSION_KEY)
    if not data:
        return None
    if time.time() - data.get("last", 0) > settings.MES_TERMINAL_IDLE_SECONDS:
        sign_out(request, idle=True)
        return None
    user = get_user_model().objects.filter(pk=data["id"], is_active=True).first()
    if user is None:
        sign_out(request)
    return user


def touch(request: HttpRequest) -> None:
    """An operator action (not a background refresh) keeps the sign-in alive."""
    data = request.session.get(SESSION_KEY)
    if data:
        data["last"] = time.time()
        request.session[SESSION_KEY] = data


def sign_in(request: HttpRequest, user: AbstractBaseUser) -> None:
    request.session.cycle_key()
    request.session[SESSION_KEY] = {"id": user.pk, "last": time.time()}
    request.session.pop("terminal_idle_out", None)


def sign_out(request: HttpRequest, *, idle: bool = False) -> None:
    request.session.pop(SESSION_KEY, None)
    if idle:
        request.session["terminal_idle_out"] = True


class SignInRefused(Exception):
    pass


def _recent_failures(*, badge: str = "", terminal: str = "") -> int:
    since = timezone.now() - timedelta(seconds=settings.MES_TERMINAL_LOCKOUT_SECONDS)
    failures = SignInFailure.objects.filter(at__gte=since)
    if badge:
        failures = failures.filter(badge=badge)
    if terminal:
        failures = failures.filter(terminal=terminal)
    return failures.count()


def check_badge(badge: str, terminal: str) -> OperatorProfile:
    """Step one: the badge. Returns its profile (PIN still to check when it has one)."""
    badge = (badge or "").strip()
    _refuse_when_locked(badge, terminal)
    profile = OperatorProfile.objects.select_related("user").filter(badge=badge).first()
    if not badge or profile is None or not profile.user.is_active:
        _fail(badge, terminal)
        raise SignInRefused(_("This badge is not known here. Try again or ask your supervisor."))
    return profile


def check_pin(badge: str, pin: str, terminal: str) -> AbstractBaseUser:
    """Step two: badge and PIN together."""
    badge = (badge or "").strip()
    _refuse_when_locked(badge, terminal)
    user = operator_by_badge(badge, pin)
    if user is None:
        _fail(badge, terminal)
        left = settings.MES_TERMINAL_MAX_FAILURES - _recent_failures(badge=badge)
        if left <= 0:
            raise SignInRefused(_locked_message())
        raise SignInRefused(
            _("Wrong PIN. %(left)s more tries before sign-in is locked.") % {"left": left}
        )
    return user


def _refuse_when_locked(badge: str, terminal: str) -> None:
    limit = settings.MES_TERMINAL_MAX_FAILURES
    if (badge and _recent_failures(badge=badge) >= limit) or (
        terminal and _recent_failures(terminal=terminal) >= 3 * limit
    ):
        raise SignInRefused(_locked_message())


def _locked_message() -> str:
    minutes = max(1, settings.MES_TERMINAL_LOCKOUT_SECONDS // 60)
    return _(
        "Too many wrong tries. Sign-in is locked for %(minutes)s minutes; ask your supervisor."
    ) % {"minutes": minutes}


def _fail(badge: str, terminal: str) -> None:
    with transaction.atomic():
        SignInFailure.objects.create(badge=badge[:32], terminal=terminal[:64])
