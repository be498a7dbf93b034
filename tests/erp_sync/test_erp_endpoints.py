"""/api/v1/erp-endpoints/{code}/: integrator only; the secret is write-only; DELETE keeps
undelivered events as dead letters."""

from __future__ import annotations

import pytest
from django.db import connection

from erp_sync.models import DeliveryStatus, ErpEndpoint, EventType, OutboxDelivery, OutboxEvent
from tests.factories import make_work_order

from .helpers import API, assert_error, walk

pytestmark = pytest.mark.django_db
SECRET = "s3cret-0123456789-abcdef"
BODY = {
    "url": "https://erp.example.com/mes/events",
    "secret": SECRET,
    "event_types": ["work_order.updated", "confirmation.created"],
    "active": True,
}


def url(code: str | None = None) -> str:
    return f"{API}/erp-endpoints/" + (f"{code}/" if code else "")


def put(client, code: str, body: dict):
    return client.put(url(code), body, format="json")


def without_secret(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "secret"}


def assert_no_secret(response, *secrets: str) -> None:
    text = response.content.decode()
    assert '"secret"' not in text
    for secret in secrets or (SECRET,):
        assert secret not in text


def test_put_creates_and_never_returns_the_secret(integrator_client):
    response = put(integrator_client, "erp-main", BODY)

    assert response.status_code == 201, response.content
    assert response.json() == {
        "code": "erp-main",
        "url": BODY["url"],
        "event_types": sorted(BODY["event_types"]),
        "active": True,
    }
    assert_no_secret(response)
    endpoint = ErpEndpoint.objects.get(code="erp-main")
    assert endpoint.get_secret() == SECRET


def test_get_one_and_list_never_return_the_secret(integrator_client):
    put(integrator_client, "erp-a", BODY)
    put(integrator_client, "erp-b", {**BODY, "secret": "another-secret-0123456789"})

    one = integrator_client.get(url("erp-a"))
    assert one.status_code == 200
    assert set(one.json()) == {"code", "url", "event_types", "active"}
    assert_no_secret(one, SECRET, "another-secret-0123456789")

    listed = integrator_client.get(url())
    assert set(listed.json()) == {"results", "next"}
    assert [row["code"] for row in listed.json()["results"]] == ["erp-a", "erp-b"]
    assert all("secret" not in row for row in listed.json()["results"])
    assert_no_secret(listed, SECRET, "another-secret-0123456789")
    assert [row["code"] for row in walk(integrator_client, url() + "?page_size=1")] == [
        "erp-a",
        "erp-b",
    ]


def test_the_secret_is_required_on_create(integrator_client):
    response = put(integrator_client, "erp-x", without_secret(BODY))

    assert_error(response, 400, "invalid", {"secret"})
    assert not ErpEndpoint.objects.exists()


def test_the_same_body_again_is_200(integrator_client):
    first = put(integrator_client, "erp-main", BODY)
    again = put(integrator_client, "erp-main", BODY)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert ErpEndpoint.objects.count() == 1


def test_an_update_without_secret_keeps_it_and_a_new_secret_replaces_it(integrator_client):
    put(integrator_client, "erp-main", BODY)

    kept = put(integrator_client, "erp-main", {**without_secret(BODY), "active": False})
    assert kept.status_code == 200
    assert kept.json()["active"] is False
    assert ErpEndpoint.objects.get().get_secret() == SECRET

    replaced = put(integrator_client, "erp-main", {**BODY, "secret": "rotated-0123456789-xyz"})
    assert replaced.status_code == 200
    assert_no_secret(replaced, "rotated-0123456789-xyz", SECRET)
    assert ErpEndpoint.objects.get().get_secret() == "rotated-0123456789-xyz"


@pytest.mark.parametrize(
    "change,field",
    [
        ({"url": "not a url"}, "url"),
        ({"url": None}, "url"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["work_order.deleted"]}, "event_types.0"),
        ({"event_types": "work_order.updated"}, "event_types"),
        ({"secret": "short"}, "secret"),
        ({"active": "perhaps"}, "active"),
    ],
)
def test_invalid_bodies_are_400(integrator_client, change, field):
    response = put(integrator_client, "erp-x", {**BODY, **change})
    body = assert_error(response, 400, "invalid")
    assert any(name == field or name.startswith(f"{field}.") for name in body["errors"]), body
    assert not ErpEndpoint.objects.exists()


def test_the_erp_scope_is_refused_everything(erp_client, integrator_client):
    put(integrator_client, "erp-main", BODY)

    assert_error(erp_client.get(url()), 403, "permission_denied")
    assert_error(erp_client.get(url("erp-main")), 403, "permission_denied")
    assert_error(put(erp_client, "erp-other", BODY), 403, "permission_denied")
    assert_error(erp_client.delete(url("erp-main")), 403, "permission_denied")
    assert list(ErpEndpoint.objects.values_list("code", flat=True)) == ["erp-main"]


def test_anonymous_is_401(anon_client, db):
    assert_error(anon_client.get(url()), 401, "not_authenticated")
    assert_error(put(anon_client, "erp-x", BODY), 401, "not_authenticated")
    assert not ErpEndpoint.objects.exists()


def test_unknown_endpoint_is_404(integrator_client):
    assert_error(integrator_client.get(url("nope")), 404, "not_found")
    assert_error(integrator_client.delete(url("nope")), 404, "not_found")


def test_delete_keeps_undelivered_events_as_dead_letters(integrator_client, supervisor):
    put(integrator_client, "erp-main", {**BODY, "event_types": ["work_order.updated"]})
    put(integrator_client, "erp-keep", {**BODY, "event_types": ["work_order.updated"]})
    wo = make_work_order(actor=supervisor, number="WO-DL")
    deliveries = OutboxDelivery.objects.filter(endpoint_code="erp-main")
    assert deliveries.count() == 1
    delivered = OutboxDelivery.objects.create(
        event=deliveries.get().event,
        endpoint=ErpEndpoint.objects.get(code="erp-main"),
        endpoint_code="erp-main",
        aggregate_key=wo.number,
        status=DeliveryStatus.DELIVERED,
    )
    events = OutboxEvent.objects.count()

    response = integrator_client.delete(url("erp-main"))

    assert response.status_code == 204
    assert response.content == b""
    assert not ErpEndpoint.objects.filter(code="erp-main").exists()
    assert_error(integrator_client.get(url("erp-main")), 404, "not_found")
    undelivered = OutboxDelivery.objects.exclude(pk=delivered.pk).get(endpoint_code="erp-main")
    assert undelivered.status == DeliveryStatus.DEAD
    assert undelivered.endpoint_id is None
    assert undelivered.event.event_type == EventType.WORK_ORDER_UPDATED
    assert undelivered.event.aggregate_key == "WO-DL"
    delivered.refresh_from_db()
    assert delivered.status == DeliveryStatus.DELIVERED
    assert OutboxEvent.objects.count() == events
    # The other endpoint's delivery is untouched.
    assert OutboxDelivery.objects.get(endpoint_code="erp-keep").status == DeliveryStatus.PENDING


def test_an_endpoint_receives_only_its_event_types(integrator_client, supervisor):
    put(integrator_client, "erp-conf", {**BODY, "event_types": ["confirmation.created"]})
    put(
        integrator_client,
        "erp-off",
        {**BODY, "event_types": ["work_order.updated"], "active": False},
    )

    make_work_order(actor=supervisor)

    assert not OutboxDelivery.objects.exists()


@pytest.mark.parametrize(
    "target,message",
    [
        ("ftp://erp.example.com/events", "Scheme 'ftp' is not allowed; use http or https."),
        ("http://127.0.0.1:5432/", "Target address 127.0.0.1 is not allowed (loopback)."),
        ("http://[::1]:8089/events", "Target address ::1 is not allowed (loopback)."),
        ("http://localhost:8089/events", "Target address 127.0.0.1 is not allowed (loopback)."),
        ("http://0.0.0.0:8089/", "Target address 0.0.0.0 is not allowed (unspecified)."),
        (
            "http://169.254.169.254/latest/meta-data/",
            "Target address 169.254.169.254 is not allowed (link-local).",
        ),
        ("http://[fe80::1]/", "Target address fe80::1 is not allowed (link-local)."),
        ("https://10.0.0.5/events", "Target address 10.0.0.5 is not allowed (private)."),
        ("https://172.16.8.1/events", "Target address 172.16.8.1 is not allowed (private)."),
        ("https://192.168.1.20/events", "Target address 192.168.1.20 is not allowed (private)."),
        ("https://[fd00::5]/events", "Target address fd00::5 is not allowed (private)."),
        ("http://224.0.0.1/", "Target address 224.0.0.1 is not allowed (multicast)."),
    ],
)
def test_targets_the_mes_must_not_post_to_are_refused_naming_the_url(
    integrator_client, settings, target, message
):
    settings.MES_OUTBOUND_ALLOWED_HOSTS = []

    response = put(integrator_client, "erp-x", {**BODY, "url": target})

    body = assert_error(response, 400, "invalid", {"url"})
    assert body["errors"]["url"] == [message]
    assert not ErpEndpoint.objects.exists()


def test_an_internal_target_is_accepted_once_the_allow_list_names_it(integrator_client, settings):
    settings.MES_OUTBOUND_ALLOWED_HOSTS = []
    target = {**BODY, "url": "http://10.20.0.7:8080/events"}
    assert_error(put(integrator_client, "erp-x", target), 400, "invalid", {"url"})

    settings.MES_OUTBOUND_ALLOWED_HOSTS = ["10.20.0.0/16"]
    assert put(integrator_client, "erp-x", target).status_code == 201
    # The allow-list names that network, not every private one.
    other = {**BODY, "url": "http://10.21.0.7:8080/events"}
    assert_error(put(integrator_client, "erp-x", other), 400, "invalid", {"url"})
    assert ErpEndpoint.objects.get().url == target["url"]


def test_the_secret_is_stored_encrypted(integrator_client):
    put(integrator_client, "erp-main", BODY)

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret_encrypted FROM {ErpEndpoint._meta.db_table}")
        (stored,) = cursor.fetchone()
    assert stored.startswith("fernet:")
    assert SECRET not in stored
    assert ErpEndpoint.objects.get().get_secret() == SECRET
