"""ERP endpoints in the admin: saved through the service, the secret write-only (never
rendered, kept when left empty), the URL checked like the API's."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from erp_sync.models import ErpEndpoint
from erp_sync.services import upsert_endpoint

pytestmark = pytest.mark.django_db
SECRET = "admin-visible-secret-0123456789"
NEW_SECRET = "rotated-admin-secret-9876543210"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def endpoint():
    endpoint, _, _ = upsert_endpoint(
        "erp-main",
        url="https://erp.example.com/mes/events",
        secret=SECRET,
        event_types=["work_order.updated"],
        active=True,
    )
    return endpoint


def form(**changes) -> dict:
    data = {
        "code": "erp-main",
        "url": "https://erp.example.com/mes/events",
        "secret": "",
        "event_types": ["work_order.updated", "confirmation.created"],
        "active": "on",
    }
    data.update(changes)
    return data


def secret_input(html: str) -> str:
    match = re.search(r"<input[^>]*name=\"secret\"[^>]*>", html)
    assert match, "no secret input"
    return match.group(0)


def test_the_change_page_never_shows_the_secret(admin_client, endpoint):
    change = reverse("admin:erp_sync_erpendpoint_change", args=[endpoint.pk])

    html = admin_client.get(change).content.decode()
    listed = admin_client.get(reverse("admin:erp_sync_erpendpoint_changelist")).content.decode()

    assert SECRET not in html and SECRET not in listed
    assert endpoint.secret_encrypted not in html and "fernet:" not in html
    assert 'type="password"' in secret_input(html)
    assert "value=" not in secret_input(html)
    assert "leave empty to keep the current one" in html


def test_a_change_leaving_the_secret_empty_keeps_it_a_new_one_replaces_it(admin_client, endpoint):
    change = reverse("admin:erp_sync_erpendpoint_change", args=[endpoint.pk])

    kept = admin_client.post(change, form(url="https://erp2.example.com/events"))
    assert kept.status_code == 302, kept.content.decode()[:3000]
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.get_secret()) == ("https://erp2.example.com/events", SECRET)
    assert endpoint.event_types == ["confirmation.created", "work_order.updated"]

    # An invalid form shows again without the secret just typed.
    again = admin_client.post(change, form(url="http://169.254.169.254/", secret=NEW_SECRET))
    assert again.status_code == 200
    html = again.content.decode()
    assert "Target address 169.254.169.254 is not allowed (link-local)." in html
    assert NEW_SECRET not in html
    endpoint.refresh_from_db()
    assert endpoint.get_secret() == SECRET

    replaced = admin_client.post(change, form(secret=NEW_SECRET))
    assert replaced.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.get_secret() == NEW_SECRET
    assert NEW_SECRET not in endpoint.secret_encrypted


def test_a_new_endpoint_needs_a_secret_and_a_url_the_mes_may_post_to(
    admin_client, settings, caplog
):
    settings.MES_OUTBOUND_ALLOWED_HOSTS = []
    add = reverse("admin:erp_sync_erpendpoint_add")

    no_secret = admin_client.post(add, form())
    assert "A new endpoint needs a secret." in no_secret.content.decode()
    loopback = admin_client.post(add, form(url="http://127.0.0.1:5432/", secret=SECRET))
    html = loopback.content.decode()
    assert "Target address 127.0.0.1 is not allowed (loopback)." in html
    assert SECRET not in html
    assert not ErpEndpoint.objects.exists()

    created = admin_client.post(add, form(secret=SECRET))

    assert created.status_code == 302, created.content.decode()[:3000]
    endpoint = ErpEndpoint.objects.get()
    assert (endpoint.code, endpoint.get_secret()) == ("erp-main", SECRET)
    assert SECRET not in endpoint.secret_encrypted
    assert SECRET not in caplog.text
