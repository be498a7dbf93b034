"""The role table (docs/roles.md) is the product's access rules, tested: every route of the
URL configuration has a row (a new route nobody decided about fails here), and each role
meets exactly what its cell says. The admin's table is the one mes.roles gives the groups.

Cells: ``ok`` (served: a page, a redirect inside, or 404 for the made-up object the test
asks for), ``login`` (sent to sign-in), ``403`` (refused), ``setup`` (terminal routes: the
browser is no enrolled terminal, sent to setup), ``token`` (the ERP API: a bearer token,
never a browser session: 401), ``public`` (served to everyone)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from mes.choices import Role
from mes.roles import MODEL_PERMISSIONS, STAFF_ROLES

from .factories import UserFactory

DOC = Path(__file__).resolve().parent.parent / "docs" / "roles.md"
ROLES = ["anonymous", "operator", "planner", "supervisor", "admin"]


def _table(heading: str) -> list[list[str]]:
    text = DOC.read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows[2:]]


def route_table() -> dict[str, dict[str, str]]:
    table = {}
    for cells in _table("Screens and routes"):
        name, _path, *access = cells
        table[name] = dict(zip(ROLES, access, strict=True))
    return table


def url_patterns(patterns=None, prefix="", namespace=""):
    """(name, pattern) of every route but the admin's (decided by the admin table)."""
    for p in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(p, URLResolver):
            if p.namespace == "admin":
                continue
            ns = ":".join(x for x in (namespace, p.namespace or "") if x)
            yield from url_patterns(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield (f"{namespace}:{p.name}" if namespace else p.name), prefix + str(p.pattern)


def sample_url(name: str, pattern: str) -> str:
    args = []
    for converter in re.findall(r"<(?:(\w+):)?\w+>", pattern):
        args.append(999999 if converter in ("int",) else "NOPE")
    return reverse(name, args=args)


def test_every_route_is_in_the_role_table_and_nothing_else_is():
    table = route_table()
    routes = {name for name, _ in url_patterns()}
    assert None not in routes, "every route needs a name to be decided in the role table"
    undecided = sorted(routes - set(table))
    assert not undecided, f"routes nobody decided about (add them to docs/roles.md): {undecided}"
    stale = sorted(set(table) - routes)
    assert not stale, f"docs/roles.md names routes that do not exist: {stale}"


def outcome(response) -> str:
    where = response.get("Location", "")
    if response.status_code == 401:
        return "token"
    if response.status_code == 403:
        return "403"
    if response.status_code in (301, 302):
        if where.startswith(reverse("login")):
            return "login"
        if where.startswith(reverse("terminal:setup")):
            return "setup"
    if response.status_code >= 500:
        return f"HTTP {response.status_code}"
    return "ok"


@pytest.fixture
def personas(db):
    users = {
        "operator": UserFactory(username="op", roles=[Role.OPERATOR]),
        "planner": UserFactory(username="pl", roles=[Role.PLANNER], is_staff=True),
        "supervisor": UserFactory(username="su", roles=[Role.SUPERVISOR], is_staff=True),
        "admin": UserFactory(username="ad", roles=[Role.ADMIN], is_staff=True, is_superuser=True),
    }
    return users


def test_each_role_meets_what_the_table_says(personas):
    table = route_table()
    wrong = []
    for name, pattern in url_patterns():
        url = sample_url(name, pattern)
        for role in ROLES:
            client = Client(REMOTE_ADDR="10.20.30.40")  # not loopback: as from the network
            if role != "anonymous":
                client.force_login(personas[role])
            response = client.get(url)
            if response.status_code == 405:
                response = client.post(url, {})
            got, want = outcome(response), table[name][role]
            if want == "public":
                want = "ok"
            if got != want:
                wrong.append(f"{name} as {role}: {got}, the table says {want}")
    assert not wrong, "\n".join(wrong)


def test_the_admin_table_is_the_one_the_groups_get():
    documented: dict[str, dict[str, tuple[str, ...]]] = {Role.PLANNER: {}, Role.SUPERVISOR: {}}
    for model, planner, supervisor in _table("Admin (model permissions)"):
        for role, cell in ((Role.PLANNER, planner), (Role.SUPERVISOR, supervisor)):
            actions = tuple(
                a.strip() for a in cell.split(",") if a.strip() not in ("", "\N{EN DASH}")
            )
            if actions:
                documented[role][model] = actions
    for role in (Role.PLANNER, Role.SUPERVISOR):
        assert documented[role] == MODEL_PERMISSIONS[role], role


@pytest.mark.django_db
def test_the_groups_hold_exactly_the_tables_permissions():
    for role in (Role.PLANNER, Role.SUPERVISOR, Role.OPERATOR):
        held = {
            f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=role).permissions.select_related("content_type")
        }
        wanted = {
            f"{model.split('.')[0]}.{action}_{model.split('.')[1]}"
            for model, actions in MODEL_PERMISSIONS[role].items()
            for action in actions
        }
        assert held == wanted, role
    assert STAFF_ROLES == (Role.PLANNER, Role.SUPERVISOR, Role.ADMIN)


def test_a_supervisor_releases_holds_and_cancels_in_the_admin(client, db):

    from .factories import make_work_order

    supervisor = UserFactory(username="su", roles=[Role.SUPERVISOR], is_staff=True)
    client.force_login(supervisor)
    changelist = reverse("admin:mes_workorder_changelist")
    assert client.get(changelist).status_code == 200
    wo = make_work_order(actor=supervisor, release=False)
    for action, extra, status in (
        ("release", {}, "released"),
        ("hold", {"reason": "Material missing"}, "on_hold"),
        ("release", {}, "released"),
        ("cancel", {"reason": "Customer cancelled"}, "cancelled"),
    ):
        response = client.post(changelist, {"action": action, "_selected_action": [wo.pk], **extra})
        assert response.status_code == 302, (action, response.status_code)
        wo.refresh_from_db()
        assert wo.status == status, action


def test_a_supervisor_sets_pins_but_cannot_move_a_badge_to_another_account(client, db):
    from mes.accounts import create_operator
    from mes.models import OperatorProfile

    supervisor = UserFactory(username="su", roles=[Role.SUPERVISOR], is_staff=True)
    admin = UserFactory(username="ad", roles=[Role.ADMIN], is_staff=True, is_superuser=True)
    profile = create_operator(username="ana", first_name="Ana", badge="1001", pin="1234")
    client.force_login(supervisor)
    url = reverse("admin:mes_operatorprofile_change", args=[profile.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"user": admin.pk, "badge": "1001", "pin": "4321"})
    assert response.status_code == 302
    profile = OperatorProfile.objects.get(pk=profile.pk)
    assert profile.user.username == "ana"  # the account stays; the PIN changed
    from mes.accounts import operator_by_badge

    assert operator_by_badge("1001", "4321") == profile.user
