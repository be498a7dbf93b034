"""API personas: an ERP client, an integrator and an anonymous caller, each a DRF
``APIClient``; the two with tokens made by ``erp_sync.auth.create_api_client``."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from erp_sync.auth import create_api_client
from erp_sync.models import Scope


def bearer_client(name: str, scope: str) -> APIClient:
    client_record, token = create_api_client(name=name, scope=scope)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    api.token = token
    api.record = client_record
    return api


@pytest.fixture
def erp_client(db) -> APIClient:
    """The ERP: scope ``erp`` (work orders, confirmations, reads of master data)."""
    return bearer_client("erp", Scope.ERP)


@pytest.fixture
def integrator_client(db) -> APIClient:
    """An integrator: scope ``integrator`` (everything, plus writing master data)."""
    return bearer_client("integrator", Scope.INTEGRATOR)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


def schema_reader() -> APIClient:
    """A caller the API's schema answers (it is not public): an admin, without touching
    the database, so module-scoped fixtures can read the schema too."""
    from django.contrib.auth import get_user_model

    api = APIClient()
    api.force_authenticate(user=get_user_model()(username="schema-reader", is_superuser=True))
    return api


@pytest.fixture
def schema_client() -> APIClient:
    return schema_reader()
