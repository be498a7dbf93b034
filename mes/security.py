"""Password sign-in's security events and lockout page (the throttling itself is
django-axes'; see AXES_* in settings). Passwords are never logged: Django's
``user_login_failed`` passes credentials already cleansed, and only the user name is read."""

from __future__ import annotations

import logging

from axes.helpers import get_client_ip_address, get_cool_off
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

security_log = logging.getLogger("mes.security")


def client_address(request: HttpRequest) -> str:
    """The client's address for throttling: behind the TLS proxy (``MES_BEHIND_TLS``) the
    last ``X-Forwarded-For`` entry, which that proxy appended (earlier ones are the
    client's own say); otherwise the connection's address."""
    if settings.MES_BEHIND_TLS:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded and forwarded[-1]:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR", "")


def _address(request: HttpRequest | None) -> str:
    return (get_client_ip_address(request) or "?") if request is not None else "?"


@receiver(user_login_failed, dispatch_uid="mes.security.login_failed")
def _login_failed(sender, credentials: dict, request: HttpRequest | None = None, **kwargs):
    security_log.warning(
        "password sign-in failed for %r from %s",
        credentials.get("username", ""),
        _address(request),
        extra={"security_event": "sign_in_failed", "username": credentials.get("username", "")},
    )


@receiver(user_locked_out, dispatch_uid="mes.security.locked_out")
def _locked_out(sender, request: HttpRequest, username: str | None, ip_address: str, **kwargs):
    security_log.warning(
        "password sign-in locked for %r from %s",
        username or "",
        ip_address,
        extra={"security_event": "lockout", "username": username or ""},
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """What a locked-out password sign-in sees (HTTP 429): why, and for how long."""
    cool_off = get_cool_off(request)
    minutes = max(1, int(cool_off.total_seconds() // 60)) if cool_off else None
    return render(
        request,
        "registration/locked_out.html",
        {"failure_limit": settings.AXES_FAILURE_LIMIT, "lockout_minutes": minutes},
        status=429,
    )
