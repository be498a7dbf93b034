"""mes.crypto: secrets kept in the database are encrypted with keys from the environment."""

from __future__ import annotations

import pytest

from mes import crypto

KEY_A = "a" * 40
KEY_B = "b" * 40


def test_a_secret_round_trips_and_is_not_stored_as_itself(settings):
    settings.MES_FIELD_ENCRYPTION_KEYS = crypto.keys_from_environment(KEY_A, "ignored")
    stored = crypto.encrypt("hmac-secret-0123456789")

    assert stored.startswith("fernet:") and "hmac-secret" not in stored
    assert stored != crypto.encrypt("hmac-secret-0123456789")  # a fresh IV every time
    assert crypto.decrypt(stored) == "hmac-secret-0123456789"


def test_rotation_new_key_first_old_ones_still_decrypt(settings):
    settings.MES_FIELD_ENCRYPTION_KEYS = crypto.keys_from_environment(KEY_A, "ignored")
    old = crypto.encrypt("old-secret-0123456789")
    settings.MES_FIELD_ENCRYPTION_KEYS = crypto.keys_from_environment(f"{KEY_B},{KEY_A}", "x")
    new = crypto.encrypt("new-secret-0123456789")

    assert crypto.decrypt(old) == "old-secret-0123456789"
    settings.MES_FIELD_ENCRYPTION_KEYS = crypto.keys_from_environment(KEY_B, "ignored")
    assert crypto.decrypt(new) == "new-secret-0123456789"
    with pytest.raises(crypto.SecretUnreadable, match="enter it again"):
        crypto.decrypt(old)


def test_without_a_key_one_is_derived_from_secret_key(settings):
    settings.MES_FIELD_ENCRYPTION_KEYS = crypto.keys_from_environment("", "secret-key-one")
    stored = crypto.encrypt("hmac-secret-0123456789")
    assert crypto.keys_from_environment("", "secret-key-one") == settings.MES_FIELD_ENCRYPTION_KEYS

    settings.MES_FIELD_ENCRYPTION_KEYS = crypto.keys_from_environment("", "secret-key-two")
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt(stored)


def test_plain_text_is_not_taken_for_a_secret():
    with pytest.raises(crypto.SecretUnreadable, match="not encrypted"):
        crypto.decrypt("hmac-secret-0123456789")


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="key 2 has 5 characters; give at least 32"):
        crypto.keys_from_environment(f"{KEY_A}, short", "x")
