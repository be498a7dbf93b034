"""Personas and shared fixtures."""

from __future__ import annotations

import copy
import importlib
import os

import pytest
from django.conf import settings
from django.test import override_settings

from erp_sync.auth import forget_cached_clients
from mes.accounts import create_operator
from mes.choices import Role
from mes.performance.rollups import forget_calendars

from .factories import UserFactory, make_work_order
from .support import clear_cache


@pytest.fixture(scope="session", autouse=True)
def worker_cache_prefix():
    """Under pytest-xdist the workers share a Redis cache (MES_CACHE_URL): each keeps its
    keys under a prefix of its own, so that one worker's throttle history or cleared cache
    is never another's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        yield
        return
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"test-{worker}"
    with override_settings(CACHES=caches):
        yield


@pytest.fixture(autouse=True)
def reference_data(request):
    """The rows data migrations make (roles, the downtime reason tree, scrap reasons), for
    every test that uses the database: a transactional test empties every table when it
    ends, and under pytest-xdist a later test of the same worker would find them gone."""
    names = request.fixturenames
    marker = request.node.get_closest_marker("django_db")
    if "transactional_db" in names or (marker and marker.kwargs.get("transaction")):
        request.getfixturevalue("transactional_db")
    elif "db" in names or marker:
        request.getfixturevalue("db")
    else:
        return
    from django.apps import apps as django_apps

    from mes.quality.models import ScrapReason
    from shopfloor.models import DowntimeReason

    if DowntimeReason.objects.exists() and ScrapReason.objects.exists():
        return
    importlib.import_module("mes.migrations.0002_roles_and_audit_guard").create_roles(
        django_apps, None
    )
    importlib.import_module("shopfloor.terminal.migrations.0002_default_reasons").create_tree(
        DowntimeReason
    )
    importlib.import_module("mes.quality.migrations.0002_scrap_reasons").create(django_apps, None)


@pytest.fixture(autouse=True)
def no_cached_api_clients():
    """Each test starts with an empty token cache (erp_sync.auth) and throttle history, and
    without the calendars the performance rollups keep (ids are reused after a rollback)."""
    forget_cached_clients()
    forget_calendars()
    clear_cache()
    yield
    forget_cached_clients()


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Personas' passwords and PINs are hashed; the default hasher would dominate run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def operator(db):
    """Ana, an operator with badge 1001 and PIN 1234."""
    return create_operator(
        username="ana", first_name="Ana", last_name="Lopez", badge="1001", pin="1234"
    ).user


@pytest.fixture
def other_operator(db):
    """Ben, an operator of another work center, badge 1002 and PIN 5678."""
    return create_operator(
        username="ben", first_name="Ben", last_name="Okafor", badge="1002", pin="5678"
    ).user


@pytest.fixture
def supervisor(db):
    return UserFactory(
        username="sam", first_name="Sam", last_name="Weber", roles=[Role.SUPERVISOR], is_staff=True
    )


@pytest.fixture
def planner(db):
    return UserFactory(username="pia", first_name="Pia", last_name="Novak", roles=[Role.PLANNER])


@pytest.fixture
def admin_user(db):
    return UserFactory(username="root", roles=[Role.ADMIN], is_staff=True, is_superuser=True)


@pytest.fixture
def work_order(supervisor):
    """A released three-step work order of 100 pieces, first operation ready."""
    return make_work_order(actor=supervisor)
