"""Enrolling and revoking shop-floor terminals: the one place that writes them, with an
audit record per change."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from mes.choices import EntityType
from mes.errors import Conflict, ValidationFailed
from mes.models import WorkCenter
from mes.services.common import Actor, ActorLike, write_audit

from .models import SignInThrottle, Terminal

security_log = logging.getLogger("mes.security")

# How often a terminal's "last seen" is written: a poll every 1.5 s must not mean a write.
SEEN_RESOLUTION = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def enrol_terminal(
    *,
    work_center: WorkCenter,
    name: str,
    actor: ActorLike,
    replacing: Terminal | None = None,
) -> tuple[Terminal, str]:
    """Enrol a terminal at ``work_center``; returns it with the token for its cookie (shown
    to nobody, stored only as a hash). ``replacing``, the terminal this browser was before,
    is revoked in the same transaction."""
    who = Actor.of(actor)
    name = " ".join((name or "").split()) or f"{work_center.code} terminal"
    if len(name) > 64:
        raise ValidationFailed.field("name", "A terminal name is at most 64 characters.")
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        if replacing is not None and replacing.revoked_at is None:
            revoke_terminal(replacing, actor=who, reason="replaced by a new enrolment", at=now)
        terminal = Terminal.objects.create(
            name=name,
            work_center=work_center,
            token_hash=token_hash(token),
            enrolled_by=who.user,
            enrolled_at=now,
        )
        write_audit(
            who,
            entity_type=EntityType.TERMINAL,
            entity_id=terminal.pk,
            entity_label=name[:100],
            work_order=None,
            action="enrol",
            at=now,
            changes={"work_center": work_center.code},
        )
    return terminal, token


def revoke_terminal(
    terminal: Terminal, *, actor: ActorLike, reason: str = "", at: datetime | None = None
) -> Terminal:
    """Revoke a terminal: its browser is a stranger from its next request on (and whoever is
    signed in there is signed out with it)."""
    who = Actor.of(actor)
    now = at or timezone.now()
    with transaction.atomic():
        locked = Terminal.objects.select_for_update().get(pk=terminal.pk)
        if locked.revoked_at is not None:
            by = locked.revoked_by.get_full_name() or locked.revoked_by.get_username()
            raise Conflict(
                f"Terminal {locked.name} was already revoked by {by} "
                f"at {timezone.localtime(locked.revoked_at):%Y-%m-%d %H:%M}."
            )
        locked.revoked_at, locked.revoked_by = now, who.user
        locked.save(update_fields=["revoked_at", "revoked_by"])
        write_audit(
            who,
            entity_type=EntityType.TERMINAL,
            entity_id=locked.pk,
            entity_label=locked.name[:100],
            work_order=None,
            action="revoke",
            at=now,
            reason=reason,
        )
    return locked


def terminal_seen(terminal: Terminal, *, now: datetime | None = None) -> None:
    """Note that the terminal was used (at most once a minute: a telemetry write, no audit)."""
    now = now or timezone.now()
    if terminal.last_seen_at is not None and now - terminal.last_seen_at < SEEN_RESOLUTION:
        return
    Terminal.objects.filter(pk=terminal.pk).update(last_seen_at=now)
    terminal.last_seen_at = now


def clear_sign_in_attempts(keys: list[str], *, actor: ActorLike) -> int:
    """Forget the counted sign-in attempts under ``keys`` (a supervisor unlocking a badge or
    a terminal); logged as a security event."""
    who = Actor.of(actor)
    with transaction.atomic():
        done, _ = SignInThrottle.objects.filter(key__in=keys).delete()
    security_log.warning(
        "sign-in attempts cleared by %s: %s",
        who.name,
        ", ".join(keys),
        extra={"security_event": "sign_in_unlocked"},
    )
    return done
