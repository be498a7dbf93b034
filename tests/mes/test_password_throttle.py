"""Password sign-in (/accounts/login/ and /admin/login/) is throttled per account and per
client address (django-axes, attempts in the database), says so clearly, and logs every
failure and lockout without the password."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from tests.factories import UserFactory

PASSWORD = "correct-horse-battery"  # UserFactory's
LOGIN = reverse("login")
ADMIN_LOGIN = reverse("admin:login")


@pytest.fixture
def sam(db):
    return UserFactory(username="sam", first_name="Sam", is_staff=True, is_superuser=True)


def attempt(client, url: str, username: str, password: str, address: str = "10.0.0.7"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("url", [LOGIN, ADMIN_LOGIN])
def test_after_many_wrong_passwords_the_right_one_is_refused_too(client, sam, url, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    for i in range(25):
        response = attempt(client, url, "sam", f"guess-{i}")
        assert response.status_code in (200, 429)
    locked = attempt(client, url, "sam", PASSWORD)
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many wrong passwords for this account or from this computer (5 tries)." in page
    assert "Sign-in is locked for 15 minutes, also with the right password." in page
    assert "_auth_user_id" not in client.session
    # The account is locked from another address too.
    assert attempt(client, url, "sam", PASSWORD, address="10.0.0.99").status_code == 429


def test_one_address_guessing_many_accounts_is_locked(client, sam, db):
    for i in range(5):
        attempt(client, LOGIN, f"nobody{i}", "whatever", address="10.0.0.66")
    assert attempt(client, LOGIN, "sam", PASSWORD, address="10.0.0.66").status_code == 429
    # Sam from elsewhere still signs in.
    ok = attempt(client, LOGIN, "sam", PASSWORD, address="10.0.0.8")
    assert ok.status_code == 302 and client.session["_auth_user_id"] == str(sam.pk)


def test_the_right_password_before_the_limit_signs_in_and_clears_the_count(client, sam):
    for i in range(4):
        attempt(client, LOGIN, "sam", f"guess-{i}")
    assert attempt(client, LOGIN, "sam", PASSWORD).status_code == 302
    client.logout()
    for i in range(4):
        assert attempt(client, LOGIN, "sam", f"again-{i}").status_code == 200
    assert attempt(client, LOGIN, "sam", PASSWORD).status_code == 302


def test_failures_and_the_lockout_are_logged_without_the_password(client, sam, caplog):
    with caplog.at_level(logging.INFO):
        for i in range(5):
            attempt(client, LOGIN, "sam", f"secret-guess-{i}")
    events = [r for r in caplog.records if r.name == "mes.security"]
    kinds = [r.security_event for r in events]
    assert kinds.count("sign_in_failed") == 5 and "lockout" in kinds
    assert all(r.username == "sam" for r in events)
    assert not any("secret-guess" in r.getMessage() for r in caplog.records)


def test_behind_the_tls_proxy_the_client_is_the_address_the_proxy_appended(settings, rf):
    from mes.security import client_address

    request = rf.post(
        LOGIN, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 10.0.0.5"
    )  # the first entry is whatever the client claimed
    settings.MES_BEHIND_TLS = True
    assert client_address(request) == "10.0.0.5"
    settings.MES_BEHIND_TLS = False
    assert client_address(request) == "127.0.0.1"  # no trusted proxy: the connection's
