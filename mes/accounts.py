"""Users, roles and shop-floor identities (badge + PIN) for shared terminals."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, make_password
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction

from .choices import Role
from .errors import Conflict, ValidationFailed
from .models import OperatorProfile

PIN_PATTERN = re.compile(r"^\d{4,8}$")


class PinHasher(PBKDF2PasswordHasher):
    """PBKDF2 with fewer rounds than passwords get (about 20 ms instead of 200 ms): a 4-8
    digit PIN has so few values that a slow hash adds little against an offline attack,
    while terminal sign-in must answer at once. Online guessing is stopped by the lockout
    (shopfloor.terminal.session)."""

    algorithm = "pin_pbkdf2_sha256"
    iterations = 100_000


PIN_HASHER = PinHasher()


def validate_pin(pin: str) -> str:
    if not PIN_PATTERN.match(pin or ""):
        raise ValidationFailed.field("pin", "A PIN is 4 to 8 digits.")
    return pin


def set_operator_pin(profile: OperatorProfile, *, pin: str | None) -> OperatorProfile:
    """Set (or, with None, remove) the operator's PIN; only its hash is stored."""
    profile.pin_hash = make_password(validate_pin(pin), hasher=PIN_HASHER) if pin else ""
    profile.save(update_fields=["pin_hash"])
    return profile


def create_operator(
    *,
    username: str,
    badge: str,
    first_name: str = "",
    last_name: str = "",
    pin: str | None = None,
    roles: tuple[str, ...] = (Role.OPERATOR,),
) -> OperatorProfile:
    """A user that signs in on terminals by badge (and PIN). No password: terminals only."""
    User = get_user_model()
    with transaction.atomic():
        if OperatorProfile.objects.filter(badge=badge).exists():
            raise Conflict(f"Badge {badge} is already in use.", errors={"badge": ["Taken."]})
        user = User.objects.create_user(
            username=username, first_name=first_name, last_name=last_name
        )
        user.set_unusable_password()
        user.save(update_fields=["password"])
        user.groups.add(*Group.objects.filter(name__in=roles))
        profile = OperatorProfile(user=user, badge=badge)
        profile.full_clean(exclude=["user"])
        profile.save()
        if pin:
            set_operator_pin(profile, pin=pin)
        return profile


def operator_by_badge(badge: str, pin: str | None) -> AbstractBaseUser | None:
    """The active operator behind a badge whose PIN matches, else None. Badge and PIN always:
    an operator without a PIN cannot sign in until one is set, and only users in the
    operator role sign in on terminals (a badge put on another account signs nobody in).
    Runs the hasher for unknown badges and missing PINs too, so timing does not tell which
    badges exist."""
    profile = (
        OperatorProfile.objects.select_related("user").filter(badge=(badge or "").strip()).first()
    )
    if (
        profile is None
        or not profile.user.is_active
        or not profile.has_pin
        or not profile.user.groups.filter(name=Role.OPERATOR).exists()
    ):
        PIN_HASHER.encode(pin or "0000", PIN_HASHER.salt())  # same cost as a real check
        return None
    if not _pin_matches(pin or "", profile.pin_hash):
        return None
    return profile.user


def _pin_matches(pin: str, encoded: str) -> bool:
    if encoded.startswith(PIN_HASHER.algorithm + "$"):
        return PIN_HASHER.verify(pin, encoded)
    return check_password(pin, encoded)  # PINs set before the PIN hasher existed


def has_role(user: AbstractBaseUser, *roles: str) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name__in=roles).exists()
