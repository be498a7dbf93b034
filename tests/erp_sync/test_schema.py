"""The OpenAPI 3 schema at /api/v1/schema/ and the docs at /api/v1/docs/ (local assets)."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.validation import validate_schema

from erp_sync.models import Scope
from mes.choices import Role
from tests.factories import UserFactory

from .conftest import bearer_client, schema_reader
from .helpers import API, WORK_ORDER_KEYS, assert_error

pytestmark = pytest.mark.django_db

# Every path of the contract with the methods it names.
CONTRACT = {
    "/api/v1/work-orders/": {"get"},
    "/api/v1/work-orders/{number}/": {"get", "put"},
    "/api/v1/work-orders/{number}/hold/": {"post"},
    "/api/v1/work-orders/{number}/release/": {"post"},
    "/api/v1/work-orders/{number}/cancel/": {"post"},
    "/api/v1/confirmations/": {"get"},
    "/api/v1/machines/": {"get"},
    "/api/v1/machines/{code}/": {"get", "put"},
    "/api/v1/sites/": {"get"},
    "/api/v1/sites/{code}/": {"get", "put"},
    "/api/v1/areas/": {"get"},
    "/api/v1/areas/{code}/": {"get", "put"},
    "/api/v1/work-centers/": {"get"},
    "/api/v1/work-centers/{code}/": {"get", "put"},
    "/api/v1/products/": {"get"},
    "/api/v1/products/{code}/": {"get", "put"},
    "/api/v1/routings/": {"get"},
    "/api/v1/routings/{code}/": {"get", "put"},
    "/api/v1/erp-endpoints/": {"get"},
    "/api/v1/erp-endpoints/{code}/": {"get", "put", "delete"},
}
METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = schema_reader().get(f"{API}/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:300]
    return response.json()


def test_the_schema_command_validates_without_warnings(tmp_path):
    GENERATOR_STATS.reset()
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    assert target.read_text().startswith("openapi: 3.")


def test_the_served_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # raises on an invalid document
    assert schema["info"]["version"]


def test_the_schema_is_not_public(anon_client):
    response = anon_client.get(f"{API}/schema/")

    assert_error(response, 401, "not_authenticated")


@pytest.mark.django_db
@pytest.mark.parametrize("scope", Scope.values)
def test_the_schema_answers_any_api_clients_token(scope):
    response = bearer_client(f"client-{scope}", scope).get(f"{API}/schema/")

    assert response.status_code == 200
    assert b"openapi: 3." in response.content[:100]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"), [(Role.OPERATOR, 403), (Role.PLANNER, 200), (Role.SUPERVISOR, 200)]
)
def test_the_schema_answers_signed_in_staff_but_not_operators(client, role, status):
    client.force_login(UserFactory(username="someone", roles=[role], is_staff=role != "operator"))

    response = client.get(f"{API}/schema/", {"format": "json"})

    assert response.status_code == status
    assert response["Content-Type"].startswith("application/")


@pytest.mark.django_db
def test_the_docs_page_refuses_operators_with_the_error_body(client):
    client.force_login(UserFactory(username="op", roles=[Role.OPERATOR]))

    assert_error(client.get(f"{API}/docs/"), 403, "permission_denied")


def test_the_docs_page_sends_a_browser_that_is_not_signed_in_to_sign_in(anon_client):
    response = anon_client.get(f"{API}/docs/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/api/v1/docs/")


def test_the_schema_lists_every_path_of_the_contract(schema):
    documented = {
        path: {method for method in operations if method in METHODS}
        for path, operations in schema["paths"].items()
    }
    for path, methods in CONTRACT.items():
        assert path in documented, f"{path} is missing"
        assert methods <= documented[path], (path, documented[path])


def test_bearer_authentication_is_documented(schema):
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("type") == "http" and s.get("scheme") == "bearer" for s in schemes.values())


def test_errors_are_documented_with_the_error_body(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"code", "detail", "errors"}
    assert set(error["required"]) == {"code", "detail", "errors"}
    for path, methods in CONTRACT.items():
        for method in methods:
            responses = schema["paths"][path][method]["responses"]
            for status in ("400", "401", "403"):
                assert status in responses, (path, method, status)
                ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (path, method, status)
    put = schema["paths"]["/api/v1/work-orders/{number}/"]["put"]["responses"]
    assert {"200", "201", "409", "412"} <= set(put)
    get = schema["paths"]["/api/v1/work-orders/{number}/"]["get"]["responses"]
    assert {"200", "304", "404"} <= set(get)
    for action in ("hold", "release", "cancel"):
        assert (
            "409"
            in schema["paths"][f"/api/v1/work-orders/{{number}}/{action}/"]["post"]["responses"]
        )


def test_the_work_order_representation_is_documented(schema):
    work_order = schema["components"]["schemas"]["WorkOrder"]
    assert set(work_order["properties"]) >= WORK_ORDER_KEYS


@pytest.mark.django_db
def test_the_docs_page_uses_only_local_assets(client, anon_client):
    client.force_login(UserFactory(username="pl", roles=[Role.PLANNER], is_staff=True))
    response = client.get(f"{API}/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert not re.search(r"https?://", html), re.findall(r"https?://[^\s\"'<>]+", html)
    assert "//cdn" not in html and "unpkg" not in html and "jsdelivr" not in html
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert len(assets) >= 3, assets
    # Swagger UI's start script is a file of its own (the CSP allows no inline script).
    start = f"{API}/docs/?script="
    assert start in assets and "<script>" not in html
    for asset in assets:
        assert asset.startswith("/static/") or asset == start, asset
        served = client.get(asset)
        assert served.status_code == 200, asset
    script = client.get(start)
    assert script["Content-Type"].startswith("application/javascript")
    assert re.search(r"/api/v1/schema/", script.content.decode())


def test_request_bodies_are_closed_and_413_is_documented_where_a_body_is_read(schema):
    """The API refuses unknown properties and bodies over the size limit; the document
    says so (additively: ``additionalProperties: false`` on request components, a 413
    response and the ``payload_too_large`` code)."""
    components = schema["components"]["schemas"]
    requests = [name for name in components if name.endswith("Request")]
    assert {"WorkOrderPutRequest", "MachinePutRequest", "ConnectionRequest"} <= set(requests)
    for name in requests:
        assert components[name]["additionalProperties"] is False, name
        assert "refused" in components[name]["description"], name
    assert "payload_too_large" in components["ErrorCodeEnum"]["enum"]
    bodies = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method in METHODS and "requestBody" in operation:
                bodies += 1
                response = operation["responses"].get("413")
                assert response is not None, (method, path)
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (method, path)
    assert bodies >= 11
