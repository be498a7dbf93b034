"""Personas and shared fixtures."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from erp_sync.auth import forget_cached_clients
from mes.accounts import create_operator
from mes.choices import Role
from mes.performance.rollups import forget_calendars

from .factories import UserFactory, make_work_order


@pytest.fixture(autouse=True)
def no_cached_api_clients():
    """Each test starts with an empty token cache (erp_sync.auth) and throttle history, and
    without the calendars the performance rollups keep (ids are reused after a rollback)."""
    forget_cached_clients()
    forget_calendars()
    cache.clear()
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
