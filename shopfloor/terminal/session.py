"""Who and where a shared terminal is: the enrolled terminal this browser is (a cookie with a
random token; the terminal itself is a server-side record a supervisor can revoke) and the
operator signed in on it (in the session, signed out after a configurable idle time).

Sign-in takes badge and PIN together and answers the same way for an unknown badge, an
inactive operator, an operator without a PIN and a wrong PIN. Every attempt is counted
before its PIN is checked, per badge and per terminal, by one conditional UPDATE: parallel
guesses from any number of server processes stop at the limit."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Greatest
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from mes.accounts import operator_by_badge
from mes.models import WorkCenter

from . import services
from .models import SignInThrottle, Terminal

COOKIE = "mes_terminal"
COOKIE_AGE = 5 * 365 * 24 * 3600  # the terminal record, not the cookie, decides validity
SESSION_KEY = "terminal_operator"
BADGE_MAX = 32
TERMINAL_FACTOR = 3  # a terminal may try this many times the per-badge limit, over all badges

security_log = logging.getLogger("mes.security")


# --- The terminal ------------------------------------------------------------------------------


def current_terminal(request: HttpRequest) -> Terminal | None:
    """The enrolled, not revoked terminal this browser is (looked up once per request)."""
    if hasattr(request, "_mes_terminal"):
        return request._mes_terminal
    token = request.COOKIES.get(COOKIE, "")
    terminal = None
    if token and len(token) <= 100 and token.isascii():
        terminal = (
            Terminal.objects.select_related("work_center__area")
            .filter(token_hash=services.token_hash(token), revoked_at__isnull=True)
            .first()
        )
        if terminal is not None:
            services.terminal_seen(terminal)
    request._mes_terminal = terminal
    return terminal


def bound_work_center(request: HttpRequest) -> WorkCenter | None:
    terminal = current_terminal(request)
    return terminal.work_center if terminal is not None else None


def bind(response: HttpResponse, token: str) -> None:
    """Give the browser its terminal's token (from :func:`services.enrol_terminal`)."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_AGE,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


# --- The operator ------------------------------------------------------------------------------


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


def clean_badge(raw: str | None) -> str:
    """A badge as typed or scanned: without surrounding blanks, at most BADGE_MAX long."""
    return (raw or "").strip()[:BADGE_MAX]


def check_sign_in(badge: str, pin: str, terminal: Terminal) -> AbstractBaseUser:
    """The operator behind ``badge`` and ``pin`` at ``terminal``, or SignInRefused with a
    message that tells nothing about whether the badge exists."""
    badge = clean_badge(badge)
    if not badge or not pin:
        raise SignInRefused(_("Scan or type your badge, then enter your PIN."))
    limit = settings.MES_TERMINAL_MAX_FAILURES
    now = timezone.now()
    badge_key, terminal_key = f"badge:{badge}", f"terminal:{terminal.pk}"
    if not _count_attempt(terminal_key, TERMINAL_FACTOR * limit, now):
        _security_event("terminal locked", badge, terminal)
        raise SignInRefused(_locked_message())
    if not _count_attempt(badge_key, limit, now):
        _security_event("badge locked", badge, terminal)
        raise SignInRefused(_locked_message())
    user = operator_by_badge(badge, pin)
    if user is None:
        _security_event("wrong badge or PIN", badge, terminal)
        attempts = (
            SignInThrottle.objects.filter(key=badge_key).values_list("attempts", flat=True).first()
        )
        left = limit - (attempts or limit)
        if left <= 0:
            raise SignInRefused(_locked_message())
        raise SignInRefused(
            _(
                "Badge or PIN not recognised. %(left)s more tries before sign-in is locked; "
                "no PIN yet? Ask your supervisor."
            )
            % {"left": left}
        )
    # The right PIN clears the badge's count and gives the terminal its attempt back.
    SignInThrottle.objects.filter(key=badge_key).update(attempts=0)
    SignInThrottle.objects.filter(key=terminal_key).update(
        attempts=Greatest(F("attempts") - 1, Value(0))
    )
    return user


def _count_attempt(key: str, limit: int, now: datetime) -> bool:
    """Count one attempt under ``key`` unless the limit is reached in the current window
    (then False). Windows are fixed: one starts with the first attempt after the last one
    ran out and lasts the lockout time (``last_at`` is its start), so a busy terminal's few
    typos never add up over a shift. One conditional UPDATE: no read-then-write gap between
    processes."""
    window_over = Q(last_at__lt=now - timedelta(seconds=settings.MES_TERMINAL_LOCKOUT_SECONDS))

    def bump() -> int:
        return (
            SignInThrottle.objects.filter(key=key)
            .filter(Q(attempts__lt=limit) | window_over)
            .update(
                attempts=Case(When(window_over, then=Value(1)), default=F("attempts") + 1),
                last_at=Case(When(window_over, then=Value(now)), default=F("last_at")),
            )
        )

    if bump():
        return True
    try:
        with transaction.atomic():
            SignInThrottle.objects.create(key=key, attempts=1, last_at=now)
        return True
    except IntegrityError:  # the key exists: it is locked, or another process just made it
        return bool(bump())


def _locked_message() -> str:
    minutes = max(1, settings.MES_TERMINAL_LOCKOUT_SECONDS // 60)
    return _(
        "Too many wrong tries. Sign-in is locked for %(minutes)s minutes; ask your supervisor."
    ) % {"minutes": minutes}


def _security_event(event: str, badge: str, terminal: Terminal) -> None:
    security_log.warning(
        "terminal sign-in refused: %s (badge %r, terminal %s at %s)",
        event,
        badge,
        terminal.pk,
        terminal.work_center.code,
        extra={"security_event": "sign_in_refused", "reason": event},
    )
