"""Secrets kept in the database (the HMAC keys of ERP endpoints), encrypted with Fernet
(AES-128-CBC with HMAC-SHA256, from the ``cryptography`` package).

Keys come from ``settings.MES_FIELD_ENCRYPTION_KEYS`` (see ``MES_FIELD_ENCRYPTION_KEY`` in
the settings): the first one encrypts, every one decrypts, so a key is rotated by putting
the new one first. A stored value is ``fernet:<token>``; anything else is not encrypted.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PREFIX = "fernet:"
MIN_KEY_LENGTH = 32
_INFO = b"lightmes field encryption v1"


class SecretUnreadable(ValueError):
    """A stored secret that the configured keys cannot decrypt (or that is not encrypted)."""


def derive_key(material: str) -> bytes:
    """A Fernet key from any secret string (HKDF-SHA256)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        material.encode()
    )
    return base64.urlsafe_b64encode(raw)


def keys_from_environment(value: str, secret_key: str) -> list[bytes]:
    """The Fernet keys for ``MES_FIELD_ENCRYPTION_KEY`` (comma-separated secrets of at least
    32 characters, the first encrypting), or one derived from ``SECRET_KEY`` when it is
    empty. ValueError for a key too short to be one."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    for position, entry in enumerate(entries, start=1):
        if len(entry) < MIN_KEY_LENGTH:
            raise ValueError(
                f"key {position} has {len(entry)} characters; give at least {MIN_KEY_LENGTH} "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    return [derive_key(entry) for entry in entries or [secret_key]]


@lru_cache(maxsize=4)
def _fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.MES_FIELD_ENCRYPTION_KEYS))


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


def encrypt(plain: str) -> str:
    return PREFIX + _current().encrypt(plain.encode()).decode("ascii")


def decrypt(stored: str) -> str:
    """The plain text of an :func:`encrypt` result. Raises :class:`SecretUnreadable`."""
    if not is_encrypted(stored):
        raise SecretUnreadable("The stored secret is not encrypted.")
    try:
        return _current().decrypt(stored.removeprefix(PREFIX)).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The stored secret cannot be decrypted with the configured keys "
            "(MES_FIELD_ENCRYPTION_KEY or SECRET_KEY changed?); enter it again."
        ) from None
