"""Every 4xx body is exactly {"code", "detail", "errors"}; authentication (401) versus
authorisation (403); bad input never yields a 5xx. Also: tokens are stored hashed and
``create_api_client`` prints the token alone on its last line."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from erp_sync.models import ApiClient
from mes.models import Product, WorkOrder
from tests.factories import make_routing

from .helpers import API, assert_error, wo_body, wo_url

pytestmark = pytest.mark.django_db


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- 401 and 403 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/work-orders/", "/work-orders/WO-1/", "/confirmations/", "/products/"]
)
def test_a_missing_token_is_401(anon_client, path):
    response = anon_client.get(API + path)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_token_is_401(erp_client):
    response = bearer(erp_client.token + "x").get(f"{API}/work-orders/")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer a b", "Token {token}", "Basic dXNlcjpwYXNz", "{token}"]
)
def test_a_malformed_authorization_header_is_401(erp_client, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.format(token=erp_client.token))
    assert_error(client.get(f"{API}/work-orders/"), 401, "not_authenticated")


def test_a_revoked_client_is_401(erp_client):
    ApiClient.objects.filter(pk=erp_client.record.pk).update(is_active=False)
    assert_error(erp_client.get(f"{API}/work-orders/"), 401, "not_authenticated")


def test_a_revoked_token_stops_working_within_the_cache_time(erp_client, settings):
    settings.MES_API_TOKEN_CACHE_SECONDS = 0.3
    assert erp_client.get(f"{API}/work-orders/").status_code == 200  # looked up, cached
    ApiClient.objects.filter(pk=erp_client.record.pk).update(is_active=False)
    assert erp_client.get(f"{API}/work-orders/").status_code == 200  # still trusted briefly
    time.sleep(0.4)
    assert_error(erp_client.get(f"{API}/work-orders/"), 401, "not_authenticated")


def test_a_valid_token_without_the_scope_is_403(erp_client):
    response = erp_client.put(f"{API}/products/P1/", {"name": "P", "unit": "pcs"}, format="json")

    assert_error(response, 403, "permission_denied")
    assert not Product.objects.exists()


def test_401_wins_over_403_and_404(anon_client):
    assert_error(
        anon_client.put(f"{API}/products/P1/", {}, format="json"), 401, "not_authenticated"
    )
    assert_error(anon_client.get(wo_url("WO-NONE")), 401, "not_authenticated")


def test_tokens_are_stored_hashed(erp_client):
    record = ApiClient.objects.get(pk=erp_client.record.pk)
    stored = " ".join(
        str(v) for v in ApiClient.objects.filter(pk=record.pk).values().get().values()
    )
    assert erp_client.token not in stored
    assert record.token_hash == hashlib.sha256(erp_client.token.encode()).hexdigest()


def test_create_api_client_prints_a_working_token_on_its_last_line(db):
    out = StringIO()
    call_command("create_api_client", "erp-cli", "--scope", "erp", stdout=out)

    token = out.getvalue().strip().splitlines()[-1]

    assert token.strip() == token and " " not in token
    assert ApiClient.objects.get(name="erp-cli").scope == "erp"
    assert bearer(token).get(f"{API}/work-orders/").status_code == 200
    response = bearer(token).put(f"{API}/products/P/", {"name": "P", "unit": "pcs"}, format="json")
    assert_error(response, 403, "permission_denied")


# --- 404 and 405 ------------------------------------------------------------------------------


def test_unknown_order_is_404(erp_client):
    assert_error(erp_client.get(wo_url("WO-NONE")), 404, "not_found")
    assert_error(
        erp_client.post(wo_url("WO-NONE", "hold"), {"reason": "x"}, format="json"),
        404,
        "not_found",
    )


@pytest.mark.parametrize(
    "path", ["/nothing-here/", "/work-orders/WO-1/explode/", "/work-orders/WO-1/hold/x/", "/"]
)
def test_an_unknown_url_under_the_api_is_a_json_404(erp_client, path):
    assert_error(erp_client.get(API + path), 404, "not_found")


def test_an_unknown_url_is_a_json_404_without_a_token_too(anon_client, db):
    assert_error(anon_client.get(f"{API}/nothing-here/"), 404, "not_found")


@pytest.mark.parametrize(
    "method,path",
    [
        ("delete", "/work-orders/WO-1/"),
        ("patch", "/work-orders/WO-1/"),
        ("post", "/work-orders/"),
        ("post", "/work-orders/WO-1/"),
        ("put", "/confirmations/"),
        ("post", "/erp-endpoints/"),
    ],
)
def test_a_method_that_is_not_allowed_is_405(integrator_client, method, path):
    response = getattr(integrator_client, method)(API + path, {}, format="json")
    assert_error(response, 405, "method_not_allowed")
    assert response.has_header("Allow")


def test_an_unacceptable_accept_header_is_406_with_the_error_body(erp_client):
    response = erp_client.get(f"{API}/work-orders/", HTTP_ACCEPT="application/xml")
    assert_error(response, 406, "not_acceptable")


def test_throttling_is_429_with_the_error_body(erp_client, monkeypatch):
    from erp_sync.api.views import ClientRateThrottle
    from tests.support import clear_cache

    monkeypatch.setattr(ClientRateThrottle, "THROTTLE_RATES", {"api_client": "2/min"})
    clear_cache()
    try:
        statuses = [erp_client.get(f"{API}/confirmations/").status_code for _ in range(2)]
        response = erp_client.get(f"{API}/confirmations/")
    finally:
        clear_cache()

    assert statuses == [200, 200]
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


# --- 415 and 400 for bodies -------------------------------------------------------------------


@pytest.fixture
def product_code():
    return make_routing(1).product.code


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_415(erp_client, product_code, content_type):
    response = erp_client.put(
        wo_url("WO-1"), f"product={product_code}&quantity=1", content_type=content_type
    )
    assert_error(response, 415, "unsupported_media_type")
    assert not WorkOrder.objects.exists()


def test_a_multipart_body_is_415(erp_client, product_code):
    response = erp_client.put(wo_url("WO-1"), {"product": product_code}, format="multipart")
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "raw", ['{"product": ', "{'product': 'x'}", "", "\xff\xfe", "[1, 2", "NaN"]
)
def test_malformed_json_is_400(erp_client, product_code, raw):
    response = erp_client.put(wo_url("WO-1"), raw, content_type="application/json")
    assert_error(response, 400, "invalid")
    assert not WorkOrder.objects.exists()


@pytest.mark.parametrize("raw", ["[]", '"text"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_400(erp_client, product_code, raw):
    response = erp_client.put(wo_url("WO-1"), raw, content_type="application/json")
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize("number", ["has%20space", "x" * 65, "semi;colon", "%C3%A4", "a+b", "%2A"])
def test_an_invalid_number_in_the_path_is_400(erp_client, product_code, number):
    response = erp_client.put(f"{API}/work-orders/{number}/", wo_body(product_code), format="json")
    assert_error(response, 400, "invalid", {"number"})
    assert not WorkOrder.objects.exists()


def test_a_naive_due_date_is_refused(erp_client, product_code):
    response = erp_client.put(
        wo_url("WO-1"), wo_body(product_code, due_date="2026-12-01T14:00:00"), format="json"
    )

    body = assert_error(response, 400, "invalid", {"due_date"})
    assert "offset" in body["errors"]["due_date"][0]
    assert not WorkOrder.objects.exists()


def test_field_errors_name_nested_fields_with_dots(integrator_client, db):
    response = integrator_client.put(
        f"{API}/routings/R1/",
        {"product": "P", "steps": [{"sequence": 10, "name": "", "work_center": "WC"}]},
        format="json",
    )
    assert_error(response, 400, "invalid", {"steps.0.name"})


# --- Never a 5xx ------------------------------------------------------------------------------

# Lookups by a code from the URL path that holds a NUL character.
NUL_LOOKUPS = [
    ("get", "/work-orders/bad%00number/"),
    ("post", "/work-orders/bad%00number/hold/"),
    ("get", "/products/bad%00code/"),
    ("get", "/machines/bad%00code/"),
    ("get", "/erp-endpoints/bad%00code/"),
    ("delete", "/erp-endpoints/bad%00code/"),
]


@pytest.mark.parametrize(
    "method,path",
    [
        *NUL_LOOKUPS,
        ("put", "/work-orders/bad%00number/"),
        ("put", "/products/bad%00code/"),
        ("get", "/work-orders/?product=bad%00code"),
        ("get", "/work-orders/?cursor=%00"),
        ("get", "/work-orders/?updated_since=2026-01-01T00:00:00%2B99:00"),
        ("get", "/work-orders/?updated_since=9999-12-31T23:59:59-23:59"),
        ("get", "/work-orders/?page_size=99999999999999999999999"),
        ("get", "/confirmations/?after=99999999999999999999999"),
        ("get", "/work-orders/?cursor=eyJ1IjoiOTk5OTktMDEtMDEiLCJuIjoiIn0"),
    ],
)
def test_hostile_input_is_a_4xx_with_the_error_body(integrator_client, product_code, method, path):
    integrator_client.raise_request_exception = False
    body = {"reason": "x", **wo_body(product_code), "name": "P", "unit": "pcs"}
    response = getattr(integrator_client, method)(API + path, body, format="json")

    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert_error(response, response.status_code, response.json()["code"])


@pytest.mark.parametrize(
    "field,value",
    [
        ("quantity", 10**30),
        ("quantity", "1e400"),
        ("quantity", -0.0),
        ("due_date", "0001-01-01T00:00:00+14:00"),
        ("due_date", "9999-12-31T23:59:59-14:00"),
        ("due_date", 12345),
        ("product", "\u0000"),
        ("notes", "\u0000"),
        ("routing", "x\u0000"),
    ],
)
def test_hostile_work_order_fields_are_4xx(erp_client, product_code, field, value):
    erp_client.raise_request_exception = False
    response = erp_client.put(
        wo_url("WO-H"), wo_body(product_code, **{field: value}), format="json"
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert_error(response, response.status_code, response.json()["code"])


# --- Forged cursors ---------------------------------------------------------------------------


def cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


FEED = {"updated_since": "2026-01-01T00:00:00Z"}
STOPS = {"after": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    "path,params,values",
    [
        ("/work-orders/", FEED, {"u": "2026-02-30T00:00:00+00:00", "n": "WO-1"}),
        ("/work-orders/", FEED, {"u": "2026-01-01T00:00:00", "n": "WO-1"}),  # naive
        ("/work-orders/", FEED, {"u": "9999-12-31T23:59:59-23:59", "n": "WO-1"}),
        ("/work-orders/", FEED, {"u": "0001-01-01T00:00:00+23:59", "n": "WO-1"}),
        ("/work-orders/", FEED, {"u": "2026-01-01T00:00:00+00:00", "n": "WO\u00001"}),
        ("/work-orders/", {}, {"k": "WO\u00001"}),
        ("/work-orders/", {}, {"k": "WO\ud8001"}),  # a lone surrogate no database takes
        ("/products/", {}, {"k": "x" * 300}),
        ("/downtimes/", STOPS, {"s": "2026-02-30T08:00:00+00:00", "i": 1}),
        ("/downtimes/", STOPS, {"s": "2026-01-01T08:00:00+00:00", "i": 10**30}),
        ("/downtimes/", STOPS, {"s": "2026-01-01T08:00:00+00:00", "i": True}),
        ("/downtimes/", STOPS, {"s": "2026-01-01T08:00:00+00:00", "i": -1}),
    ],
)
def test_a_forged_cursor_is_400(erp_client, path, params, values):
    """A cursor is base64 anyone can write: each value is checked before it reaches a query
    (an impossible date, a NUL byte or a 100-bit integer would be a server error there)."""
    response = erp_client.get(API + path, {**params, "cursor": cursor(values)})
    assert_error(response, 400, "invalid", {"cursor"})


@pytest.mark.parametrize(
    "raw,field",
    [
        ('{"code": "P-1", "name": "\\ud800"}', "name"),
        ('{"code": "P-1", "name": "Bracket", "\\udfff": 1}', "\\udfff"),
    ],
)
def test_a_lone_surrogate_in_a_body_is_400_naming_it(integrator_client, raw, field):
    """JSON may escape a lone UTF-16 surrogate, which no UTF-8 text can hold: answered with
    the contract's 400 (a database or the JSON answer would otherwise fail with a 500)."""
    response = integrator_client.put(
        API + "/products/P-1/", raw.encode(), content_type="application/json"
    )
    assert_error(response, 400, "invalid", {field})
    assert not Product.objects.filter(code="P-1").exists()


# --- What Django refuses before a view: the contract's body under /api/ ------------------------


@pytest.mark.parametrize(
    "path,field",
    [
        ("/work-orders/bad%00number/", None),
        ("/work-orders/?extra=%00", "extra"),
        ("/work-orders/?status=released&q%00=1", "q\x00"),
    ],
)
def test_a_nul_byte_in_the_path_or_query_is_400(erp_client, path, field):
    response = erp_client.get(API + path)
    body = assert_error(response, 400, "invalid", {field} if field else set())
    assert "NUL" in body["detail"]


def test_a_host_this_server_does_not_answer_is_a_json_400(erp_client):
    response = erp_client.get(f"{API}/work-orders/", HTTP_HOST="evil.example")
    body = assert_error(response, 400, "invalid")
    assert "ALLOWED_HOSTS" not in body["detail"]  # no hint at the configuration


def test_too_many_query_parameters_is_a_json_400(erp_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    query = "&".join(f"p{i}=1" for i in range(11))
    response = erp_client.get(f"{API}/work-orders/?{query}")
    assert "10" in assert_error(response, 400, "invalid")["detail"]


def test_a_body_over_the_size_limit_is_a_json_413(erp_client, product_code, settings):
    notes = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = erp_client.put(wo_url("WO-BIG"), wo_body(product_code, notes=notes), format="json")
    assert_error(response, 413, "payload_too_large")
    assert not WorkOrder.objects.exists()


@pytest.mark.urls("tests.erp_sync.plain_urls")
def test_a_csrf_failure_under_the_api_is_a_json_403_and_a_page_elsewhere(db):
    browser = Client(enforce_csrf_checks=True)

    api = browser.post(f"{API}/_plain/post/", {"x": "1"})
    page = browser.post("/_plain/post/", {"x": "1"})

    assert_error(api, 403, "permission_denied")
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")


@pytest.mark.urls("tests.erp_sync.plain_urls")
def test_permission_denied_outside_drf_is_a_json_403_under_the_api(db):
    assert_error(Client().get(f"{API}/_plain/forbidden/"), 403, "permission_denied")
    page = Client().get("/_plain/forbidden/")
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")
