"""Declaring a machine down or blocked, and back up, on the operator terminal: the steps
(kind, category, reason, expected return), what the tile then says, the confirmation in
words, double taps, what someone else did meanwhile, and refusals in words."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from mes.models import AuditRecord, Machine
from shopfloor.downtime import declare_machine_down, declare_machine_up, open_downtime
from shopfloor.models import DowntimeRecord

from .conftest import first_op, forms, text

HOME = reverse("terminal:home")
PANEL = reverse("terminal:panel")


def down_url(machine: Machine) -> str:
    return reverse("terminal:machine_down", args=[machine.code])


def up_url(machine: Machine) -> str:
    return reverse("terminal:machine_up", args=[machine.code])


@pytest.fixture
def machine(op10) -> Machine:
    return op10.work_center.machines.get()


def fresh(machine: Machine) -> Machine:
    return Machine.objects.get(pk=machine.pk)


def hm(moment) -> str:
    return date_format(timezone.localtime(moment), "H:i")


def final_form(client, machine: Machine, kind="down", category="MECH", reason="MECH-SPINDLE"):
    """Walk the declare screen to its last step; the hidden fields of its form."""
    page = client.get(down_url(machine), {"kind": kind, "category": category, "reason": reason})
    assert page.status_code == 200
    (form,) = [f for f in forms(page) if "token" in f["hidden"]]
    return form


def test_the_tile_offers_machine_down_and_the_steps_lead_to_a_declaration(ana, machine, operator):
    home = ana.get(HOME)
    assert "Machine down…" in text(home)
    assert f'href="{down_url(machine)}"' in home.content.decode()

    kinds = text(ana.get(down_url(machine)))
    assert "What is the matter with the machine?" in kinds
    assert "Down" in kinds and "Blocked" in kinds
    categories = text(ana.get(down_url(machine), {"kind": "down"}))
    assert "Down: why?" in categories and "Mechanical" in categories
    reasons = text(ana.get(down_url(machine), {"kind": "down", "category": "MECH"}))
    assert "Spindle" in reasons and "Hydraulics" in reasons
    form = final_form(ana, machine)
    page = text(
        ana.get(down_url(machine), {"kind": "down", "category": "MECH", "reason": "MECH-SPINDLE"})
    )
    assert "Down: Mechanical > Spindle. When is it expected back?" in page
    assert [value for _name, value in form["buttons"]] == [
        "15",
        "30",
        "60",
        "120",
        "240",
        "unknown",
    ]
    for label in ("in 15 min", "in 30 min", "in 1 h", "in 2 h", "in 4 h", "Not known"):
        assert label in page

    before = timezone.now()
    response = ana.post(down_url(machine), {**form["hidden"], "back": "120"})

    assert response.status_code == 302 and response["Location"] == HOME
    machine = fresh(machine)
    assert machine.state == "down"
    back = machine.expected_back_at
    assert before + timedelta(hours=2) <= back <= timezone.now() + timedelta(hours=2)
    record = open_downtime(machine)
    assert (record.cause, record.reason, record.reason_by) == (
        "manual",
        "Mechanical > Spindle (unplanned)",
        operator,
    )
    assert AuditRecord.objects.filter(action="declare_down", actor=operator).count() == 1
    after = text(ana.get(HOME))
    assert (
        f"{machine.code} declared down: Mechanical > Spindle (unplanned). Back about {hm(back)}."
        in after
    )
    assert (
        f"Declared down by Ana Lopez · Mechanical > Spindle (unplanned) · back ~{hm(back)}" in after
    )
    assert "Machine back up" in after and "Machine down…" not in after


def test_blocked_without_an_expected_return_shows_blocked_on_the_tile(ana, machine):
    form = final_form(ana, machine, kind="blocked", category="MAT", reason="MAT-MISSING")

    ana.post(down_url(machine), {**form["hidden"], "back": "unknown"})

    assert fresh(machine).expected_back_at is None
    panel = text(ana.get(PANEL, HTTP_HX_REQUEST="true"))
    assert "⊘ Blocked" in panel
    assert "Declared blocked by Ana Lopez · Material > Material missing (unplanned)" in panel
    assert "back: not known" in panel


def test_back_up_asks_in_words_then_brings_the_machine_back(ana, machine, supervisor, operator):
    back = timezone.now() + timedelta(minutes=30)
    record = declare_machine_down(
        machine, actor=supervisor, kind="down", code="MECH-HYD", expected_back=back
    )
    home = ana.get(HOME)
    assert f'href="{up_url(machine)}"' in home.content.decode()

    question = ana.get(up_url(machine))
    words = text(question)
    assert f"Is {machine.code} back up?" in words
    assert (
        f"Declared down by Sam Weber since {hm(record.started_at)}: "
        "Mechanical > Hydraulics (unplanned)." in words
    )
    assert f"Expected back about {hm(back)}." in words
    assert f"Yes, {machine.code} is back up" in words and "No, it stays down" in words
    assert fresh(machine).state == "down"  # asking changes nothing
    (form,) = [f for f in forms(question) if "token" in f["hidden"]]

    response = ana.post(up_url(machine), form["hidden"])

    assert response.status_code == 302 and response["Location"] == HOME
    machine = fresh(machine)
    assert (machine.state, machine.expected_back_at) == ("idle", None)
    record.refresh_from_db()
    assert record.ended_at is not None
    assert AuditRecord.objects.get(action="declare_up").actor == operator
    after = text(ana.get(HOME))
    assert f"{machine.code} is back up (idle)." in after
    assert "Machine down…" in after and "Declared down by" not in after


def test_a_double_tap_declares_once(ana, machine):
    form = final_form(ana, machine)
    data = {**form["hidden"], "back": "60"}

    ana.post(down_url(machine), data)
    again = ana.post(down_url(machine), data, follow=True)

    assert "Already done: " in text(again)
    assert AuditRecord.objects.filter(action="declare_down").count() == 1
    assert DowntimeRecord.objects.count() == 1


def test_declaring_what_someone_declared_meanwhile_names_who_and_changes_nothing(
    ana, machine, supervisor
):
    form = final_form(ana, machine)  # the operator looks at the screen ...
    declare_machine_down(machine, actor=supervisor, kind="blocked", note="No coil")  # ... Sam acts

    response = ana.post(down_url(machine), {**form["hidden"], "back": "60"}, follow=True)

    last = AuditRecord.objects.get(action="declare_blocked")
    assert (
        f"{machine.code} was declared blocked by Sam Weber at {hm(last.occurred_at)}. "
        "Nothing was changed; look again." in text(response)
    )
    assert open_downtime(machine).reason == "No coil"


def test_back_up_of_what_someone_brought_back_meanwhile_names_who(ana, machine, supervisor):
    declare_machine_down(machine, actor=supervisor, kind="down", note="Crash")
    (form,) = [f for f in forms(ana.get(up_url(machine))) if "token" in f["hidden"]]
    declare_machine_up(machine, actor=supervisor)
    response = ana.post(up_url(machine), form["hidden"], follow=True)

    assert f"{machine.code} was declared back up by Sam Weber at " in text(response)
    assert AuditRecord.objects.filter(action="declare_up").count() == 1


@pytest.mark.parametrize(
    "change,message",
    [
        ({"back": ""}, "Tap when the machine is expected back, or “Not known”."),
        ({"back": "99999"}, "Tap when the machine is expected back, or “Not known”."),
        ({"kind": "exploded"}, "Say whether the machine is down or blocked."),
        ({"reason": "MECH"}, "“MECH” is not an active downtime reason."),
        ({"reason": "<b>NOPE</b>"}, "“<b>NOPE</b>” is not an active downtime reason."),
        ({"reason": ""}, "Say why the machine is down."),
    ],
)
def test_forged_or_missing_answers_are_refused_in_words(ana, machine, change, message):
    form = final_form(ana, machine)

    response = ana.post(down_url(machine), {**form["hidden"], "back": "60", **change})

    assert response.status_code == 200
    assert message in text(response)
    assert "<b>NOPE</b>" not in response.content.decode()  # escaped
    assert fresh(machine).state != "down"
    assert not DowntimeRecord.objects.exists()


def test_a_forged_seen_value_is_no_server_error(ana, machine):
    form = final_form(ana, machine)

    response = ana.post(
        down_url(machine), {**form["hidden"], "back": "60", "seen": "1 OR 1=1"}, follow=True
    )

    assert response.status_code == 200
    assert fresh(machine).state == "down"  # not a declaration id: read as "none declared"


def test_back_up_of_a_machine_that_is_not_down_is_refused_in_words(ana, machine):
    page = text(ana.get(up_url(machine)))
    assert "is not down" in page and "Yes," not in page

    response = ana.post(up_url(machine), {"seen": "", "token": "t-1"}, follow=True)

    assert f"{machine.code} is not down (it is unknown); nothing to bring back up." in text(
        response
    )
    assert not AuditRecord.objects.filter(action="declare_up").exists()


def test_machines_of_another_work_center_or_unknown_codes_are_not_found(
    ana, machine, two_machine_order
):
    elsewhere = first_op(two_machine_order).work_center.machines.first()
    for url in (down_url(elsewhere), up_url(elsewhere), "/terminal/machine/NOPE/down/"):
        assert ana.get(url).status_code == 404
        assert (
            ana.post(url, {"kind": "down", "reason": "MECH-SPINDLE", "back": "60"}).status_code
            == 404
        )
    assert fresh(elsewhere).state != "down"


def test_an_inactive_machine_is_not_offered(ana, machine):
    Machine.objects.filter(pk=machine.pk).update(is_active=False)
    assert ana.get(down_url(machine)).status_code == 404


def test_the_screens_need_a_bound_terminal_and_an_operator(client, terminal, machine):
    assert client.get(down_url(machine))["Location"] == reverse("terminal:setup")
    assert terminal.get(down_url(machine))["Location"] == HOME
    assert terminal.post(up_url(machine))["Location"] == HOME


def test_a_declared_machine_costs_the_panel_no_extra_query(ana, machine, supervisor):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert ana.get(PANEL, HTTP_HX_REQUEST="true").status_code == 200
        return len(ctx.captured_queries)

    before = queries()
    declare_machine_down(machine, actor=supervisor, kind="down", note="Crash")

    assert queries() == before
    assert "Declared down by Sam Weber · Crash" in text(ana.get(PANEL, HTTP_HX_REQUEST="true"))
