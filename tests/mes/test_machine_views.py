"""The machines page (/machines/): who may see it, what it shows, declaring a machine down
or blocked and back up through the services, and every forged or wrong answer refused in
words, never a server error."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from mes.models import AuditRecord, Machine, Site
from shopfloor.downtime import declare_machine_down, open_downtime
from tests.factories import MachineFactory, WorkCenterFactory
from tests.terminal.conftest import text

URL = reverse("machine_list")


@pytest.fixture
def machine(db) -> Machine:
    return MachineFactory(code="PRESS-7", name="Press seven")


@pytest.fixture
def sam(client, supervisor):
    client.force_login(supervisor)
    return client


def fresh(machine: Machine) -> Machine:
    return Machine.objects.get(pk=machine.pk)


def test_anonymous_visitors_are_sent_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    "persona,status",
    [("operator", 403), ("supervisor", 200), ("planner", 200), ("admin_user", 200)],
)
def test_supervisors_planners_and_admins_only(client, machine, persona, status, request):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(URL).status_code == status
    response = client.post(
        URL, {"machine": machine.code, "action": "down", "kind": "down", "note": "Crash"}
    )
    assert response.status_code == (403 if status == 403 else 302)
    assert (fresh(machine).state == "down") is (status == 200)


def test_the_page_lists_active_machines_by_work_center_with_state_and_declaration(
    sam, machine, supervisor
):
    other = MachineFactory(code="LATHE-1")
    MachineFactory(code="OLD-1", is_active=False, work_center=machine.work_center)
    back = timezone.now() + timedelta(hours=2)
    declare_machine_down(
        machine,
        actor=supervisor,
        kind="blocked",
        code="MAT-MISSING",
        note="coil",
        expected_back=back,
    )

    response = sam.get(URL)
    page = text(response)

    assert machine.work_center.code in page and other.work_center.code in page
    assert "PRESS-7 Press seven" in page and "LATHE-1" in page and "OLD-1" not in page
    local = timezone.localtime(back, zoneinfo.ZoneInfo("Europe/Berlin"))
    assert (
        "Declared blocked by Sam Weber: Material > Material missing (unplanned): coil "
        f"expected back ~{local:%d.%m. %H:%M}" in page
    )
    # Changing the declaration starts from what was declared.
    body = response.content.decode()
    assert '<option value="MAT-MISSING" selected>' in body
    assert 'value="coil"' in body
    assert 'value="blocked" required checked' in body
    assert "Change declaration…" in page and "Back up…" in page
    assert page.count("Declare down…") == 1  # LATHE-1's


def test_the_home_page_and_the_navigation_link_the_machines_page(sam):
    body = sam.get(reverse("home")).content.decode()
    assert body.count(f'href="{URL}"') >= 2


def test_declaring_down_with_minutes_then_back_up(sam, machine, supervisor):
    before = timezone.now()
    response = sam.post(
        URL,
        {
            "machine": machine.code,
            "action": "down",
            "kind": "down",
            "reason": "MECH-SPINDLE",
            "note": "bearing",
            "back_in": "60",
            "seen": "",
        },
        follow=True,
    )

    assert "PRESS-7 declared down: Mechanical > Spindle (unplanned): bearing." in text(response)
    machine = fresh(machine)
    assert machine.state == "down"
    assert before + timedelta(hours=1) <= machine.expected_back_at
    assert machine.expected_back_at <= timezone.now() + timedelta(hours=1)
    record = open_downtime(machine)
    assert (record.cause, record.reason_by) == ("manual", supervisor)
    assert AuditRecord.objects.get(action="declare_down").actor == supervisor

    response = sam.post(
        URL,
        {"machine": machine.code, "action": "up", "seen": str(record.pk), "note": "fixed"},
        follow=True,
    )

    assert "PRESS-7 is back up (idle)." in text(response)
    assert (fresh(machine).state, fresh(machine).expected_back_at) == ("idle", None)
    assert AuditRecord.objects.get(action="declare_up").reason == (
        "Declared back up: fixed; now idle"
    )


def test_an_expected_return_at_a_time_is_read_on_the_sites_clock(sam, db):
    site = Site.objects.create(code="JP", name="Osaka", time_zone="Asia/Tokyo")
    wc = WorkCenterFactory(area__site=site)
    machine = MachineFactory(work_center=wc)
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    tomorrow = timezone.localtime(timezone.now(), tokyo).date() + timedelta(days=1)

    sam.post(
        URL,
        {
            "machine": machine.code,
            "action": "down",
            "kind": "down",
            "note": "Crash",
            "back_at": f"{tomorrow:%Y-%m-%d}T09:30",
            "back_in": "60",  # a time, when given, wins
        },
    )

    expected = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, 30, tzinfo=tokyo)
    assert fresh(machine).expected_back_at == expected
    page = text(sam.get(URL))
    assert "times in Asia/Tokyo" in page
    assert f"expected back ~{tomorrow:%d.%m.} 09:30" in page


@pytest.mark.parametrize(
    "data,message",
    [
        ({"machine": "NOPE"}, "No such machine in use; nothing was changed."),
        ({"machine": "x" * 5000}, "No such machine in use; nothing was changed."),
        ({"action": "explode"}, "Nothing was asked; nothing was changed."),
        ({"kind": "broken"}, "PRESS-7: Say whether the machine is down or blocked."),
        ({"note": "", "reason": ""}, "PRESS-7: Say why the machine is down."),
        ({"reason": "MECH"}, "PRESS-7: “MECH” is not an active downtime reason."),
        ({"note": "x" * 700}, "PRESS-7: At most 500 characters."),
        ({"back_in": "abc"}, "PRESS-7: Choose when the machine is expected back."),
        ({"back_at": "next tuesday"}, "PRESS-7: “next tuesday” is not a date and time."),
        ({"back_at": "2030-01-01T10:00+05:00"}, "is not a date and time."),
        ({"back_at": "0001-01-01T00:00"}, "PRESS-7: “0001-01-01T00:00” is not a date and time."),
        ({"back_at": "9999-12-31T23:59"}, "PRESS-7: The expected return is more than a year"),
        ({"back_at": "2001-01-01T10:00"}, "PRESS-7: The expected return must be in the future."),
    ],
)
def test_forged_or_wrong_answers_are_refused_in_words(sam, machine, data, message):
    form = {"machine": machine.code, "action": "down", "kind": "down", "note": "Crash"}

    response = sam.post(URL, {**form, **data}, follow=True)

    assert response.status_code == 200
    assert message in text(response)
    assert fresh(machine).state != "down"
    assert not AuditRecord.objects.filter(entity_type="machine").exists()


def test_a_forged_seen_value_is_read_as_nothing_declared(sam, machine):
    response = sam.post(
        URL,
        {"machine": machine.code, "action": "down", "kind": "down", "note": "x", "seen": "-1"},
        follow=True,
    )
    assert response.status_code == 200
    assert fresh(machine).state == "down"


def test_an_inactive_machine_cannot_be_declared(sam, machine):
    Machine.objects.filter(pk=machine.pk).update(is_active=False)
    response = sam.post(
        URL,
        {"machine": machine.code, "action": "down", "kind": "down", "note": "x"},
        follow=True,
    )
    assert "No such machine in use; nothing was changed." in text(response)


def test_declaring_what_someone_else_declared_meanwhile_names_them(sam, machine, planner):
    declare_machine_down(machine, actor=planner, kind="down", note="Coolant leak")

    response = sam.post(
        URL,
        {"machine": machine.code, "action": "down", "kind": "blocked", "note": "x", "seen": ""},
        follow=True,
    )

    assert "PRESS-7: PRESS-7 was declared down by Pia Novak at " in text(response)
    assert open_downtime(machine).reason == "Coolant leak"


def test_back_up_of_a_machine_that_is_not_down_is_refused_in_words(sam, machine):
    response = sam.post(URL, {"machine": machine.code, "action": "up"}, follow=True)
    assert "PRESS-7: PRESS-7 is not down (it is unknown); nothing to bring back up." in text(
        response
    )


def test_the_query_count_does_not_grow_with_machines(sam, supervisor):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert sam.get(URL).status_code == 200
        return len(ctx.captured_queries)

    first = MachineFactory()
    declare_machine_down(first, actor=supervisor, kind="down", note="Crash")
    few = queries()
    for _ in range(6):
        declare_machine_down(MachineFactory(), actor=supervisor, kind="blocked", note="x")
        MachineFactory()
    # session, user, role check, machines with their plant, declarations, reason tree
    assert queries() == few == 6


def test_the_admin_cannot_change_state_or_expected_return(client, admin_user, machine):
    client.force_login(admin_user)
    url = reverse("admin:mes_machine_change", args=[machine.pk])
    assert client.get(url).status_code == 200

    response = client.post(
        url,
        {
            "name": "Renamed",
            "work_center": machine.work_center_id,
            "is_active": "on",
            "state": "down",
            "expected_back_at_0": "2030-01-01",
            "expected_back_at_1": "10:00:00",
        },
    )

    assert response.status_code == 302
    machine = fresh(machine)
    assert (machine.name, machine.state, machine.expected_back_at) == ("Renamed", "unknown", None)
