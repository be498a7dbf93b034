"""The operator terminal's screens and actions through the Django test client: binding,
sign-in (badge, PIN, lockout, idle), the work center and operation screens, every refusal
an operator can meet, retried and stale submissions, downtime reasons, scanning, polling,
and the query counts of the polled screens."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from mes import services
from mes.accounts import create_operator
from mes.models import AuditRecord, ProductionConfirmation
from shopfloor.models import DowntimeReason, DowntimeRecord
from shopfloor.terminal import session
from shopfloor.terminal.models import FormToken, SignInThrottle, Terminal

from ..factories import make_routing, make_work_order
from .conftest import (
    act,
    act_url,
    action_form,
    first_op,
    op_at,
    op_url,
    shown_form,
    sign_in,
    signed_in_id,
    text,
)

HOME = reverse("terminal:home")
SETUP = reverse("terminal:setup")
PANEL = reverse("terminal:panel")
HTMX = {"HTTP_HX_REQUEST": "true"}


def audit(op, action: str) -> int:
    return AuditRecord.objects.filter(
        entity_type="operation", entity_id=op.pk, action=action
    ).count()


def started(op, actor, machine=None):
    return services.start_operation(op, operator=actor, machine=machine)


def local_hm(record: AuditRecord) -> str:
    return date_format(timezone.localtime(record.occurred_at), "H:i")


# --- Binding the browser -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,url",
    [
        ("get", HOME),
        ("get", PANEL),
        ("get", reverse("terminal:operation", args=[1])),
        ("get", reverse("terminal:operation_live", args=[1])),
        ("get", reverse("terminal:scan") + "?code=WO-1"),
        ("get", reverse("terminal:downtime", args=[1])),
        ("post", reverse("terminal:sign_in")),
        ("post", reverse("terminal:act", args=[1, "start"])),
    ],
)
def test_an_unbound_browser_is_sent_to_setup(client, db, method, url):
    response = getattr(client, method)(url, {"badge": "1001"} if method == "post" else {})
    assert response.status_code == 302
    assert response["Location"] == SETUP


def test_an_unbound_poll_redirects_the_whole_page_not_the_panel(client, db):
    response = client.get(PANEL, **HTMX)
    assert response.status_code == 204
    assert response["HX-Redirect"] == SETUP


def test_a_forged_or_guessed_cookie_is_not_a_binding(client, op10):
    client.cookies[session.COOKIE] = op10.work_center.code  # what a curious user could type
    assert client.get(HOME)["Location"] == SETUP
    client.cookies[session.COOKIE] = secrets.token_urlsafe(32)
    assert client.get(HOME)["Location"] == SETUP
    client.cookies[session.COOKIE] = "x" * 5000
    assert client.get(HOME)["Location"] == SETUP


def test_setup_needs_a_signed_in_user(client, db):
    response = client.get(SETUP)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={SETUP}"


@pytest.mark.parametrize("persona", ["planner", "operator"])
def test_setup_is_refused_to_everyone_but_supervisors(client, op10, persona, request):
    client.force_login(request.getfixturevalue(persona))
    for response in (
        client.get(SETUP),
        client.post(SETUP, {"work_center": op10.work_center.code}),
    ):
        assert response.status_code == 403
        assert "Only a supervisor can set up a terminal." in text(response)
    assert session.COOKIE not in client.cookies
    assert not Terminal.objects.exists()


def test_a_supervisor_enrols_the_browser_as_a_server_side_terminal(client, supervisor, op10):
    wc = op10.work_center
    client.force_login(supervisor)
    page = client.get(SETUP)
    assert page.status_code == 200
    assert f"{wc.code} \N{EN DASH} {wc.name}" in text(page)
    assert "No terminal is enrolled yet." in text(page)

    response = client.post(SETUP, {"work_center": wc.code, "name": "  Lathe   cell left "})
    assert response.status_code == 302 and response["Location"] == HOME
    cookie = response.cookies[session.COOKIE]
    terminal = Terminal.objects.get()
    assert (terminal.name, terminal.work_center, terminal.enrolled_by) == (
        "Lathe cell left",
        wc,
        supervisor,
    )
    # The cookie is a random token; the server keeps only its hash.
    assert len(cookie.value) >= 40 and wc.code not in cookie.value
    assert terminal.token_hash == hashlib.sha256(cookie.value.encode()).hexdigest()
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    record = AuditRecord.objects.get(entity_type="terminal", entity_id=terminal.pk)
    assert (record.action, record.actor, record.changes) == (
        "enrol",
        supervisor,
        {"work_center": wc.code},
    )

    home = client.get(HOME)
    assert home.status_code == 200
    assert wc.code in text(home) and "Scan your badge" in text(home)
    Terminal.objects.filter(pk=terminal.pk).update(last_seen_at=None)
    client.get(HOME)
    terminal.refresh_from_db()
    assert terminal.last_seen_at is not None
    client.force_login(supervisor)  # binding signed the supervisor out of this browser
    listing = text(client.get(SETUP))
    assert "This browser is terminal Lathe cell left" in listing
    assert "Active" in listing and "Sam Weber" in listing


def test_enrolling_a_browser_again_revokes_the_terminal_it_was(client, supervisor, op10):
    client.force_login(supervisor)
    first = client.post(SETUP, {"work_center": op10.work_center.code, "name": "T1"})
    old_token = first.cookies[session.COOKIE].value
    client.force_login(supervisor)
    client.post(SETUP, {"work_center": op10.work_center.code, "name": "T2"})
    old, new = Terminal.objects.order_by("pk")
    assert old.revoked_at is not None and old.revoked_by == supervisor and new.active
    stranger = Client()
    stranger.cookies[session.COOKIE] = old_token
    assert stranger.get(HOME)["Location"] == SETUP


def test_a_revoked_terminal_is_sent_to_setup_and_its_operator_signed_out(
    client, ana, supervisor, op10
):
    terminal = Terminal.objects.get()
    client.force_login(supervisor)
    response = client.post(reverse("terminal:revoke", args=[terminal.pk]))
    assert response.status_code == 302
    page = text(client.get(SETUP))
    assert f"Terminal {terminal.name} is revoked" in page and "Revoked" in page
    for url in (HOME, PANEL, op_url(op10)):
        assert ana.get(url)["Location"] == SETUP
    assert ana.post(act_url(op10, "start"), {})["Location"] == SETUP
    op10.refresh_from_db()
    assert op10.status == "ready"
    assert AuditRecord.objects.filter(entity_type="terminal", action="revoke").count() == 1

    # Revoking again tells who did it first; nothing changes.
    again = client.post(reverse("terminal:revoke", args=[terminal.pk]), follow=True)
    assert "was already revoked by Sam Weber" in text(again)
    assert AuditRecord.objects.filter(entity_type="terminal", action="revoke").count() == 1


@pytest.mark.parametrize("persona", ["planner", "operator"])
def test_only_supervisors_revoke_terminals(client, ana, persona, request):
    terminal = Terminal.objects.get()
    client.force_login(request.getfixturevalue(persona))
    assert client.post(reverse("terminal:revoke", args=[terminal.pk])).status_code == 403
    terminal.refresh_from_db()
    assert terminal.active


def test_setup_refuses_an_unknown_work_center(client, supervisor, op10):
    client.force_login(supervisor)
    response = client.post(SETUP, {"work_center": "NO-SUCH-WC"})
    assert response.status_code == 200
    assert "Choose a work center." in text(response)
    assert session.COOKIE not in response.cookies
    assert not Terminal.objects.exists()


def test_binding_a_terminal_does_not_leave_the_supervisor_signed_in_there(
    client, supervisor, op10, operator
):
    client.force_login(supervisor)
    client.post(SETUP, {"work_center": op10.work_center.code})
    sign_in(client, "1001", "1234")
    assert client.get(reverse("work_order_list")).status_code == 302  # to the login page


# --- Signing in --------------------------------------------------------------------------------

REFUSED = "Badge or PIN not recognised."


def test_the_sign_in_screen_asks_for_badge_and_pin_together(terminal):
    page = terminal.get(HOME)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'for="badge"' in html and 'for="pin"' in html
    assert "Scan your badge and enter your PIN" in text(page)


@pytest.mark.parametrize(
    "badge,pin,why",
    [
        ("9999", "1234", "unknown badge"),
        ("1001", "0000", "wrong PIN"),
        ("1003", "1234", "operator without a PIN"),
        ("1004", "1234", "inactive operator"),
        ("1005", "1234", "a badge on an account that is no operator's"),
    ],
)
def test_every_refusal_reads_the_same_and_is_counted(terminal, operator, badge, pin, why):
    create_operator(username="cy", first_name="Cy", badge="1003")  # no PIN yet
    inactive = create_operator(username="di", first_name="Di", badge="1004", pin="1234").user
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])
    create_operator(username="ed", first_name="Ed", badge="1005", pin="1234", roles=("admin",))

    response = sign_in(terminal, badge, pin)
    assert response.status_code == 200
    page = text(response)
    assert f"{REFUSED} 4 more tries before sign-in is locked" in page, why
    assert "Ana" not in page and "Cy" not in page and "Di" not in page and "Ed" not in page
    assert signed_in_id(terminal) is None
    assert SignInThrottle.objects.get(key=f"badge:{badge}").attempts == 1


def test_badge_and_pin_are_both_needed_and_a_missing_one_is_not_counted(terminal, operator):
    for badge, pin in (("1001", ""), ("", "1234"), ("   ", "")):
        page = text(sign_in(terminal, badge, pin))
        assert "Scan or type your badge, then enter your PIN." in page
    assert signed_in_id(terminal) is None
    assert not SignInThrottle.objects.exists()
    # The old first step (badge alone) signs nobody in, not even an operator without a PIN.
    create_operator(username="cy", first_name="Cy", badge="1003")
    assert terminal.post(reverse("terminal:sign_in"), {"badge": "1003"}).status_code == 200
    assert signed_in_id(terminal) is None


def test_badge_and_pin_sign_in(terminal, operator):
    done = sign_in(terminal, "1001", "1234")
    assert done.status_code == 302 and done["Location"] == HOME
    assert signed_in_id(terminal) == operator.pk
    home = text(terminal.get(HOME))
    assert "Ana Lopez" in home and "Sign out" in home and "Queue" in home


def test_after_a_refusal_the_badge_stays_and_the_pin_is_asked_again(terminal, operator):
    response = sign_in(terminal, "1001", "0000")
    html = response.content.decode()
    assert 'value="1001"' in html and "0000" not in html


def test_too_many_wrong_pins_lock_the_badge_even_for_the_right_pin(terminal, operator, settings):
    settings.MES_TERMINAL_MAX_FAILURES = 3
    settings.MES_TERMINAL_LOCKOUT_SECONDS = 600
    assert "2 more tries" in text(sign_in(terminal, "1001", "1111"))
    assert "1 more tries" in text(sign_in(terminal, "1001", "2222"))
    locked = text(sign_in(terminal, "1001", "3333"))
    assert "Too many wrong tries. Sign-in is locked for 10 minutes; ask your supervisor." in locked

    right = sign_in(terminal, "1001", "1234")
    assert "Too many wrong tries" in text(right)
    assert signed_in_id(terminal) is None

    # After the lockout time the right PIN works again, and clears the badge's count.
    SignInThrottle.objects.update(last_at=timezone.now() - timedelta(seconds=601))
    assert sign_in(terminal, "1001", "1234").status_code == 302
    assert signed_in_id(terminal) == operator.pk
    assert SignInThrottle.objects.get(key="badge:1001").attempts == 0


def test_the_right_pin_clears_the_count_of_earlier_wrong_ones(terminal, operator, settings):
    settings.MES_TERMINAL_MAX_FAILURES = 3
    sign_in(terminal, "1001", "1111")
    sign_in(terminal, "1001", "2222")
    assert sign_in(terminal, "1001", "1234").status_code == 302
    terminal.post(reverse("terminal:sign_out"))
    assert "2 more tries" in text(sign_in(terminal, "1001", "1111"))


def test_a_terminal_guessing_many_badges_is_locked_for_everyone(
    terminal, terminal_for, operator, settings, two_machine_order
):
    settings.MES_TERMINAL_MAX_FAILURES = 2
    for badge in ("5001", "5002", "5003", "5004", "5005", "5006"):
        sign_in(terminal, badge, "1234")
    assert "Too many wrong tries" in text(sign_in(terminal, "1001", "1234"))
    assert signed_in_id(terminal) is None
    # Another terminal is not affected.
    elsewhere = terminal_for(first_op(two_machine_order).work_center)
    assert sign_in(elsewhere, "1001", "1234").status_code == 302


def test_every_refused_sign_in_is_one_security_event_without_the_pin(terminal, operator, caplog):
    with caplog.at_level(logging.WARNING, logger="mes.security"):
        sign_in(terminal, "1001", "0000")
        sign_in(terminal, "9999", "4321")
    events = [r for r in caplog.records if r.name == "mes.security"]
    assert len(events) == 2
    assert all(r.security_event == "sign_in_refused" for r in events)
    assert not any("0000" in r.getMessage() or "4321" in r.getMessage() for r in events)


def test_sign_out_returns_to_the_badge_screen(ana):
    response = ana.post(reverse("terminal:sign_out"))
    assert response.status_code == 302 and response["Location"] == HOME
    assert signed_in_id(ana) is None
    page = text(ana.get(HOME))
    assert "Scan your badge" in page and "Ana Lopez" not in page


def test_pages_need_a_signed_in_operator(terminal, op10):
    for url in (PANEL, op_url(op10), reverse("terminal:scan") + "?code=X"):
        assert terminal.get(url)["Location"] == HOME
    response = terminal.post(act_url(op10, "start"), {})
    assert response["Location"] == HOME
    op10.refresh_from_db()
    assert op10.status == "ready"


# --- Idle sign-out -----------------------------------------------------------------------------


def set_last(client: Client, seconds_ago: float) -> float:
    s = client.session
    data = s[session.SESSION_KEY]
    data["last"] = time.time() - seconds_ago
    s[session.SESSION_KEY] = data
    s.save()
    return data["last"]


def last(client: Client) -> float:
    return client.session[session.SESSION_KEY]["last"]


def test_an_idle_operator_is_signed_out_with_a_note(ana, settings):
    settings.MES_TERMINAL_IDLE_SECONDS = 60
    set_last(ana, 59)
    assert "Queue" in text(ana.get(HOME))  # not yet

    set_last(ana, 61)
    page = text(ana.get(HOME))
    assert "You were signed out after a while without use." in page
    assert "Scan your badge" in page and "Ana Lopez" not in page
    assert signed_in_id(ana) is None
    assert "signed out after a while" not in text(ana.get(HOME))  # said once


def test_an_idle_poll_takes_the_whole_screen_to_sign_in(ana, op10, settings):
    settings.MES_TERMINAL_IDLE_SECONDS = 60
    set_last(ana, 61)
    response = ana.get(PANEL, **HTMX)
    assert response.status_code == 204 and response["HX-Redirect"] == HOME
    assert "You were signed out after a while without use." in text(ana.get(HOME))


def test_polling_does_not_keep_an_operator_signed_in_but_actions_do(ana, op10, settings):
    settings.MES_TERMINAL_IDLE_SECONDS = 60
    before = set_last(ana, 30)
    assert ana.get(PANEL, **HTMX).status_code == 200
    live = reverse("terminal:operation_live", args=[op10.pk]) + "?status=ready:released"
    assert ana.get(live, **HTMX).status_code == 200
    assert last(ana) == before

    response = act(ana, op10, "start")
    assert "Started" in text(response)
    assert time.time() - last(ana) < 5


# --- Work center screen ------------------------------------------------------------------------


def test_the_work_center_screen_shows_tiles_and_the_queue(ana, op10, supervisor):
    machine = op10.work_center.machines.get()
    other = make_work_order(actor=supervisor, routing=op10.work_order.routing)
    started(first_op(other), supervisor)
    page = text(ana.get(HOME))
    assert machine.code in page
    assert f"{first_op(other).label} · 0 / 100" in page  # on the tile
    assert op10.label in page and "Ready" in page  # in the queue
    panel = ana.get(PANEL, **HTMX)
    assert panel.status_code == 200 and op10.label in text(panel)
    assert "<html" not in panel.content.decode()  # a partial, not a page


def test_the_queue_is_in_the_order_the_live_schedule_plans(ana, op10, supervisor):
    from mes.scheduling.services import replan

    routing = op10.work_order.routing
    later = make_work_order(actor=supervisor, routing=routing, due_in_days=5)
    rush = make_work_order(actor=supervisor, routing=routing, due_in_days=9)
    services.update_work_order(rush, actor=supervisor, priority="rush")
    held = make_work_order(actor=supervisor, routing=routing, due_in_days=1)
    services.hold_work_order(held, actor=supervisor, reason="Drawing")
    replan(reason="test")

    page = text(ana.get(HOME))
    shown = [page.index(f"{wo.number} op 10") for wo in (rush, op10.work_order, later, held)]
    assert shown == sorted(shown)  # rush, then by due date; unplanned (held) last
    planned = first_op(rush).planned_start
    assert timezone.localtime(planned).strftime("%d.%m. %H:%M") in page


def _queued_orders(n: int, supervisor):
    routing = make_routing(2, machines_per_center=2)
    orders = [make_work_order(actor=supervisor, routing=routing) for _ in range(n)]
    started(first_op(orders[0]), supervisor, first_op(orders[0]).work_center.machines.first())
    services.pause_operation(first_op(orders[0]), actor=supervisor, reason="Break")
    started(first_op(orders[1]), supervisor, first_op(orders[1]).work_center.machines.last())
    services.hold_work_order(orders[-1], actor=supervisor, reason="Drawing")
    return first_op(orders[0]).work_center


def _queries(client: Client, url: str, **extra) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **extra)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "url,extra,expected",
    # session, user, work center, machines, their operations, open downtimes, queue; opening
    # the screen (not the background refresh) also saves the session's last activity.
    [(HOME, {}, 10), (PANEL, HTMX, 7)],
)
def test_work_center_query_counts_do_not_grow_with_the_queue(
    terminal_for, operator, supervisor, url, extra, expected
):
    counts = {}
    for n in (2, 10):
        wc = _queued_orders(n, supervisor)
        client = terminal_for(wc)
        sign_in(client, "1001", "1234")
        body = text(client.get(url, **extra))
        assert body.count(" op 10 ") >= n - 1
        counts[n] = _queries(client, url, **extra)
    assert counts[2] == counts[10]
    assert counts[10] == expected, counts


# --- Operation screen: refusals ----------------------------------------------------------------


def test_a_pending_operation_offers_no_start_and_refuses_one(
    terminal_for, operator, one_machine_order
):
    op20 = op_at(one_machine_order, 20)
    ana = terminal_for(op20.work_center)  # the terminal where op 20 is done
    sign_in(ana, "1001", "1234")
    page = ana.get(op_url(op20))
    assert "Waits for the previous step to be done." in text(page)
    assert action_form(page, op20, "start") is None
    response = act(ana, op20, "start", {"token": "t-pending", "status": "pending:released"})
    assert f"{op20.label} cannot be started: op 10 is not done yet." in text(response)
    op20.refresh_from_db()
    assert op20.status == "pending" and audit(op20, "start") == 0


def test_a_step_of_another_work_center_is_refused_here(ana, one_machine_order, supervisor):
    op10 = first_op(one_machine_order)
    services.complete_operation(
        services.start_operation(op10, operator=supervisor), actor=supervisor
    )
    op20 = op_at(one_machine_order, 20)  # ready, but at the next work center
    response = act(ana, op20, "start", {"token": "t-elsewhere", "status": "ready:in_progress"})
    assert f"This step is done at {op20.work_center.code}; use the terminal there." in text(
        response
    )
    op20.refresh_from_db()
    assert op20.status == "ready" and audit(op20, "start") == 0


def test_an_order_on_hold_offers_no_actions_and_refuses_a_start(ana, op10, supervisor):
    fields = shown_form(ana, op10, "start")
    services.hold_work_order(op10.work_order, actor=supervisor, reason="Drawing revision")
    page = ana.get(op_url(op10))
    assert "The order is on hold. Ask your supervisor before you go on." in text(page)
    assert all(action_form(page, op10, a) is None for a in ("start", "report", "complete"))

    response = act(ana, op10, "start", fields)
    assert f"{op10.label} cannot be started: {op10.work_order.number} is on hold." in text(response)
    op10.refresh_from_db()
    assert op10.status == "ready" and audit(op10, "start") == 0


@pytest.mark.parametrize(
    "action,data,verb",
    [
        ("report", {"good": "5"}, "counted"),
        ("complete", {"confirmed": "1"}, "completed"),
        ("resume", {}, "resumed"),
    ],
)
def test_an_order_on_hold_refuses_report_complete_and_resume(
    ana, op10, operator, supervisor, action, data, verb
):
    started(op10, operator)
    services.hold_work_order(op10.work_order, actor=supervisor, reason="Quality hold")
    fields = {"token": f"t-{action}", "status": "paused:on_hold"}  # as the held screen shows
    response = act(ana, op10, action, fields, **data)
    assert response.status_code == 200
    number = op10.work_order.number
    assert f"{op10.label} cannot be {verb}: {number} is on hold." in text(response)
    op10.refresh_from_db()
    assert (op10.status, op10.quantity_good) == ("paused", 0)
    assert audit(op10, "complete") == audit(op10, "report_quantity") == audit(op10, "resume") == 0


def test_a_running_operation_offers_report_pause_and_complete_with_their_reasons(
    ana, op10, operator
):
    started(op10, operator)
    page = ana.get(op_url(op10))
    assert page.status_code == 200
    for action in ("report", "pause", "complete"):
        assert action_form(page, op10, action) is not None
    assert action_form(page, op10, "start") is None
    body = text(page)
    for label in ("Good quantity", "Scrap quantity", "Scrap reason", "Surface defect"):
        assert label in body


def test_pause_asks_why_with_one_button_per_reason_and_changes_nothing(ana, op10, operator):
    started(op10, operator)
    response = act(ana, op10, "pause", htmx=True)
    assert f"Why does {op10.label} pause?" in text(response)
    chooser = action_form(response, op10, "pause")
    assert ("reason", "Tool change") in chooser["buttons"]
    assert ("reason", "Waiting for material") in chooser["buttons"]
    op10.refresh_from_db()
    assert op10.status == "running" and audit(op10, "pause") == 0

    paused = act(ana, op10, "pause", chooser["hidden"], htmx=True, reason="Tool change")
    assert f"Paused {op10.label}." in text(paused)
    op10.refresh_from_db()
    assert op10.status == "paused"
    assert AuditRecord.objects.get(entity_id=op10.pk, action="pause").reason == "Tool change"


def test_a_pause_reason_not_offered_is_refused(ana, op10, operator):
    started(op10, operator)
    response = act(ana, op10, "pause", reason="Coffee")
    assert "Choose a pause reason." in text(response)
    assert f"Why does {op10.label} pause?" in text(response)
    op10.refresh_from_db()
    assert op10.status == "running" and audit(op10, "pause") == 0


def test_scrap_without_a_scrap_reason_is_refused(ana, op10, operator):
    started(op10, operator)
    response = act(ana, op10, "report", good="3", scrap="2")
    assert "Choose a scrap reason." in text(response)
    op10.refresh_from_db()
    assert (op10.quantity_good, op10.quantity_scrap) == (0, 0)
    assert audit(op10, "report_quantity") == 0


@pytest.mark.parametrize(
    "data,message",
    [
        ({"good": "abc"}, "Good quantity must be a number."),
        (
            {"good": "1", "scrap": "two", "scrap_reason": "OTHER"},
            "Scrap quantity must be a number.",
        ),
        ({"good": "", "scrap": ""}, "Enter a good or scrap quantity."),
        ({"good": "NaN"}, "Good quantity must be a number."),
        ({"good": "1.0001"}, "At most three decimal places."),
        ({"good": "-4"}, "A correction (negative quantity) needs a reason."),
    ],
)
def test_a_report_that_is_not_a_quantity_is_refused(ana, op10, operator, data, message):
    started(op10, operator)
    response = act(ana, op10, "report", **data)
    assert response.status_code == 200
    assert message in text(response)
    op10.refresh_from_db()
    assert (op10.quantity_good, op10.quantity_scrap) == (0, 0)


def test_an_absurdly_long_quantity_is_refused_not_a_server_error(ana, op10, operator):
    started(op10, operator)
    response = act(ana, op10, "report", good="9" * 30)
    assert response.status_code == 200
    assert "At most" in text(response)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"good": "1e999999999"}, "Good quantity must be a number."),  # was a server error
        ({"good": "Infinity"}, "Good quantity must be a number."),
        ({"good": "\u0661\u0662"}, "Good quantity must be a number."),  # Arabic-Indic 12
        ({"good": "1_000"}, "Good quantity must be a number."),  # Decimal() takes it
        (
            {"good": "0", "scrap": "1e999999999", "scrap_reason": "OTHER"},
            "Scrap quantity must be a number.",
        ),
    ],
)
def test_a_quantity_is_ascii_digits_not_whatever_decimal_reads(ana, op10, operator, data, message):
    started(op10, operator)
    response = act(ana, op10, "report", **data)
    assert response.status_code == 200
    assert message in text(response)
    op10.refresh_from_db()
    assert (op10.quantity_good, op10.quantity_scrap) == (0, 0)
    assert audit(op10, "report_quantity") == 0


def test_a_report_adds_good_and_scrap_with_reason(ana, op10, operator):
    started(op10, operator)
    response = act(ana, op10, "report", good="12", scrap="2,5", scrap_reason="SURF")
    assert f"Reported 12 good and 2.5 scrap on {op10.label}." in text(response)
    op10.refresh_from_db()
    assert (op10.quantity_good, op10.quantity_scrap) == (12, 2.5)
    record = AuditRecord.objects.get(entity_id=op10.pk, action="report_quantity")
    assert (record.actor, record.reason) == (operator, "Surface defect")


def test_a_report_of_a_round_number_is_confirmed_in_plain_digits(ana, op10, operator):
    started(op10, operator)
    response = act(ana, op10, "report", good="30", scrap="100", scrap_reason="OTHER")
    assert f"Reported 30 good and 100 scrap on {op10.label}." in text(response)


# --- Retried and stale submissions -------------------------------------------------------------


def test_the_same_report_sent_twice_is_applied_once(ana, op10, operator):
    started(op10, operator)
    fields = shown_form(ana, op10, "report")
    first = act(ana, op10, "report", fields, good="5")
    assert f"Reported 5 good and 0 scrap on {op10.label}." in text(first)
    again = act(ana, op10, "report", fields, good="5")
    assert again.status_code == 200
    assert f"Already done: Reported 5 good and 0 scrap on {op10.label}." in text(again)
    op10.refresh_from_db()
    assert op10.quantity_good == 5
    assert audit(op10, "report_quantity") == 1
    assert ProductionConfirmation.objects.filter(operation=op10, kind="progress").count() == 1
    assert FormToken.objects.filter(token=fields["token"]).count() == 1


def test_a_double_tap_on_start_starts_once(ana, op10):
    fields = shown_form(ana, op10, "start")
    machine = op10.work_center.machines.get()
    assert f"Started {op10.label} on {machine.code}." in text(act(ana, op10, "start", fields))
    again = act(ana, op10, "start", fields, htmx=True)
    assert f"Already done: Started {op10.label} on {machine.code}." in text(again)
    assert audit(op10, "start") == 1


def test_every_form_on_a_screen_has_its_own_token(ana, op10, operator):
    started(op10, operator)
    page = ana.get(op_url(op10))
    tokens = [
        action_form(page, op10, a)["hidden"]["token"] for a in ("report", "pause", "complete")
    ]
    assert len(set(tokens)) == 3
    # A fresh screen, fresh tokens.
    assert action_form(ana.get(op_url(op10)), op10, "report")["hidden"]["token"] != tokens[0]


@pytest.mark.parametrize(
    "action,data",
    [("report", {"good": "1"}), ("pause", {"reason": "Break"}), ("complete", {"confirmed": "1"})],
)
def test_acting_on_what_another_operator_completed_names_who_did_it(
    ana, op10, operator, other_operator, action, data
):
    started(op10, operator)
    fields = shown_form(ana, op10, action)
    assert fields["status"] == "running:in_progress"
    services.complete_operation(op10, actor=other_operator)

    response = act(ana, op10, action, fields, **data)
    record = AuditRecord.objects.get(entity_id=op10.pk, action="complete")
    expected = (
        f"{op10.label} was completed by Ben Okafor at {local_hm(record)}. Nothing was changed."
    )
    assert expected in text(response)
    op10.refresh_from_db()
    assert (op10.status, op10.quantity_good, op10.last_operator) == ("done", 0, operator)
    assert audit(op10, "complete") == 1 and audit(op10, "pause") == 0
    # The screen now shows the operation as it is.
    assert "This step is done." in text(response)


def test_starting_what_another_operator_started_names_who_did_it(
    ana, op10, operator, other_operator
):
    fields = shown_form(ana, op10, "start")
    started(op10, other_operator)
    response = act(ana, op10, "start", fields)
    assert re.search(
        rf"{op10.label} was started by Ben Okafor at \d\d:\d\d\. Nothing was changed\.",
        text(response),
    )
    assert audit(op10, "start") == 1


# --- Completing --------------------------------------------------------------------------------


def test_complete_below_target_asks_in_words_and_changes_nothing_until_confirmed(
    ana, op10, operator
):
    started(op10, operator)
    services.report_quantity(op10, actor=operator, good=3)
    question = act(ana, op10, "complete")
    assert f"Complete {op10.label} with 3 of 100?" in text(question)
    op10.refresh_from_db()
    assert op10.status == "running" and audit(op10, "complete") == 0

    confirm = action_form(question, op10, "complete")
    assert confirm["hidden"].get("confirmed") == "1"
    done = act(ana, op10, "complete", confirm["hidden"])
    assert f"Completed {op10.label}." in text(done)
    op10.refresh_from_db()
    assert op10.status == "done" and audit(op10, "complete") == 1
    assert op_at(op10.work_order, 20).status == "ready"


def test_complete_at_target_does_not_ask(ana, op10, operator):
    started(op10, operator)
    services.report_quantity(op10, actor=operator, good=100)
    response = act(ana, op10, "complete")
    assert "with 100 of 100?" not in text(response)
    assert f"Completed {op10.label}." in text(response)
    op10.refresh_from_db()
    assert op10.status == "done"


# --- Starting on a machine ---------------------------------------------------------------------


def test_start_with_two_machines_uses_the_chosen_machine(ana_at_two, two_machine_order):
    op = first_op(two_machine_order)
    m1, m2 = op.work_center.machines.order_by("code")
    page = ana_at_two.get(op_url(op))
    radios = action_form(page, op, "start")["radios"]
    assert [(name, value) for name, value, _ in radios] == [
        ("machine", m1.code),
        ("machine", m2.code),
    ]

    response = act(ana_at_two, op, "start", machine=m2.code)
    assert f"Started {op.label} on {m2.code}." in text(response)
    op.refresh_from_db()
    assert (op.status, op.machine) == ("running", m2)


def test_two_machines_without_a_choice_is_refused(ana_at_two, two_machine_order):
    op = first_op(two_machine_order)
    response = act(ana_at_two, op, "start")
    m1, m2 = op.work_center.machines.order_by("code")
    assert f"Choose a machine for {op.label}: {m1.code}, {m2.code}." in text(response)
    op.refresh_from_db()
    assert op.status == "ready"


def test_a_busy_machine_is_marked_preselects_the_free_one_and_is_refused(
    ana_at_two, two_machine_order, supervisor
):
    op = first_op(two_machine_order)
    m1, m2 = op.work_center.machines.order_by("code")
    other = first_op(make_work_order(actor=supervisor, routing=two_machine_order.routing))
    started(other, supervisor, m1)

    page = ana_at_two.get(op_url(op))
    assert f"{m1.code} (busy)" in text(page)
    radios = action_form(page, op, "start")["radios"]
    assert [value for _, value, checked in radios if checked] == [m2.code]

    response = act(ana_at_two, op, "start", machine=m1.code)
    assert f"Machine {m1.code} is busy with {other.label}. Pause or complete that first." in text(
        response
    )
    op.refresh_from_db()
    assert op.status == "ready"


@pytest.fixture
def ana_at_two(terminal_for, operator, two_machine_order):
    client = terminal_for(first_op(two_machine_order).work_center)
    assert sign_in(client, "1001", "1234").status_code == 302
    return client


# --- The whole day of an operation -------------------------------------------------------------


def test_start_report_pause_resume_complete_through_the_screens(ana, op10, operator):
    machine = op10.work_center.machines.get()
    assert f"Started {op10.label} on {machine.code}." in text(act(ana, op10, "start"))
    act(ana, op10, "report", good="40", scrap="1", scrap_reason="SETUP")
    paused = act(ana, op10, "pause", reason="Tool change")
    assert f"Paused {op10.label}." in text(paused)
    assert action_form(paused, op10, "resume") is not None
    assert action_form(paused, op10, "pause") is None
    assert f"Resumed {op10.label}." in text(act(ana, op10, "resume"))
    act(ana, op10, "report", good="60")
    assert f"Completed {op10.label}." in text(act(ana, op10, "complete"))
    op10.refresh_from_db()
    assert (op10.status, op10.quantity_good, op10.quantity_scrap) == ("done", 100, 1)
    actions = list(
        AuditRecord.objects.filter(entity_id=op10.pk, entity_type="operation")
        .order_by("id")
        .values_list("action", "actor_name", "reason")
    )
    assert actions[1:] == [
        ("start", "Ana Lopez", ""),
        ("report_quantity", "Ana Lopez", "Setup part"),
        ("pause", "Ana Lopez", "Tool change"),
        ("resume", "Ana Lopez", ""),
        ("report_quantity", "Ana Lopez", ""),
        ("complete", "Ana Lopez", ""),
    ]


def test_htmx_actions_answer_with_the_operation_body_only(ana, op10):
    response = act(ana, op10, "start", htmx=True)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="op-body"') and "<html" not in body
    assert "Started" in text(response)


def test_unknown_actions_operations_and_methods(ana, op10):
    assert ana.post(act_url(op10, "explode"), {}).status_code == 404
    assert ana.post(reverse("terminal:act", args=[999999, "start"]), {}).status_code == 404
    assert ana.get(reverse("terminal:operation", args=[999999])).status_code == 404
    assert ana.get(act_url(op10, "start")).status_code == 405


# --- Live updates ------------------------------------------------------------------------------


def live(client, op, shown: str):
    url = reverse("terminal:operation_live", args=[op.pk]) + f"?status={shown}"
    return client.get(url, **HTMX)


def test_the_live_partial_sends_actions_out_of_band_only_when_the_status_changed(
    ana, op10, operator, supervisor
):
    same = live(ana, op10, "ready:released").content.decode()
    assert 'id="op-live"' in same
    assert 'id="op-actions"' not in same and "hx-swap-oob" not in same

    started(op10, operator)
    services.report_quantity(op10, actor=operator, good=7)
    changed = live(ana, op10, "ready:released")
    html = changed.content.decode()
    assert re.search(r'id="op-actions"[^>]*hx-swap-oob="true"', html)
    assert action_form(changed, op10, "report") is not None
    assert 'data-testid="op-good">7<' in html

    # The work order's status counts too: a hold replaces the actions.
    assert "hx-swap-oob" not in live(ana, op10, "running:in_progress").content.decode()
    services.hold_work_order(op10.work_order, actor=supervisor, reason="Material")
    held = live(ana, op10, "running:in_progress")
    assert "hx-swap-oob" in held.content.decode()
    assert "The order is on hold" in text(held)


# --- Scanning ----------------------------------------------------------------------------------


def scan(client, code: str, **extra):
    return client.get(reverse("terminal:scan"), {"code": code}, **extra)


def test_scanning_an_operation_barcode_opens_it(ana, one_machine_order):
    op20 = op_at(one_machine_order, 20)
    response = scan(ana, f"{one_machine_order.number}/20")
    assert response.status_code == 302 and response["Location"] == op_url(op20)
    response = scan(ana, f"  {one_machine_order.number}/20\n")  # scanners add whitespace
    assert response["Location"] == op_url(op20)


def test_scanning_an_order_barcode_opens_its_operation_here_else_its_current_one(
    ana, op10, operator
):
    wo = op10.work_order
    assert scan(ana, wo.number)["Location"] == op_url(op10)
    started(op10, operator)
    services.report_quantity(op10, actor=operator, good=100)
    services.complete_operation(op10, actor=operator)
    assert scan(ana, wo.number)["Location"] == op_url(op_at(wo, 20))


@pytest.mark.parametrize("code", ["NOPE-1", "WO-999999/10", "{number}/abc", "{number}/70"])
def test_scanning_something_unknown_says_so(ana, op10, code):
    code = code.format(number=op10.work_order.number)
    response = scan(ana, code)
    assert response.status_code == 302 and response["Location"] == HOME
    assert f"Nothing known as “{code}”. Scan a traveler barcode." in text(ana.get(HOME))


@pytest.mark.parametrize(
    "sequence",
    [
        "\u00b2",  # "²": str.isdigit() says yes, int() says no (was a server error)
        "\uff11\uff10",  # full-width "10": int() reads 10
        "\u0661\u0660",  # Arabic-Indic "10": int() reads 10
    ],
)
def test_a_scanned_sequence_is_ascii_digits_or_unknown(ana, op10, sequence):
    code = f"{op10.work_order.number}/{sequence}"
    response = scan(ana, code)
    assert response.status_code == 302 and response["Location"] == HOME
    assert f"Nothing known as “{code}”. Scan a traveler barcode." in text(ana.get(HOME))


def test_a_scan_holding_a_nul_byte_is_a_400_page(ana, op10):
    response = scan(ana, f"{op10.work_order.number}\x00")
    assert response.status_code == 400
    assert "holds a character that cannot be stored" in text(response)


def test_a_badge_holding_a_nul_byte_is_a_400_page_and_signs_nobody_in(terminal, operator):
    for data in ({"badge": "10\x0001"}, {"badge": "1001", "pin": "12\x0034"}):
        response = terminal.post(reverse("terminal:sign_in"), data)
        assert response.status_code == 400
        assert "nothing was changed" in text(response)
        assert signed_in_id(terminal) is None
    assert not SignInThrottle.objects.exists()


def test_a_scan_from_htmx_redirects_the_page(ana, op10):
    response = scan(ana, f"{op10.work_order.number}/10", **HTMX)
    assert response.status_code == 204 and response["HX-Redirect"] == op_url(op10)


# --- Downtime reasons --------------------------------------------------------------------------


@pytest.fixture
def stop(op10, operator):
    """An open downtime without reason on the terminal's machine (op 10 was running)."""
    started(op10, operator)
    return DowntimeRecord.objects.create(
        machine=op10.work_center.machines.get(),
        operation=op10,
        cause="down",
        started_at=timezone.now() - timedelta(minutes=4),
    )


def test_the_reason_tree_from_the_migration_is_there(db):
    paths = {r.path for r in DowntimeReason.objects.filter(parent__isnull=False)}
    assert {"Mechanical > Spindle", "Planned stop > Break", "Material > Material missing"} <= paths


@pytest.mark.parametrize(
    "category,code,stored",
    [
        ("MECH", "MECH-SPINDLE", "Mechanical > Spindle (unplanned)"),
        ("PLAN", "PLAN-BREAK", "Planned stop > Break (planned)"),
    ],
)
def test_a_downtime_reason_is_picked_in_two_steps_and_stored(
    ana, stop, operator, category, code, stored
):
    home = ana.get(HOME)
    url = reverse("terminal:downtime", args=[stop.pk])
    assert "Give reason" in text(home) and f'href="{url}"' in home.content.decode()

    categories = text(ana.get(url))
    assert f"Why did {stop.machine.code} stop?" in categories
    for name in ("Mechanical", "Electrical", "Material", "Quality", "Planned stop"):
        assert name in categories
    reasons = ana.get(url, {"category": category})
    assert DowntimeReason.objects.get(code=code).name in text(reasons)

    response = ana.post(url, {"reason": code})
    assert response.status_code == 302 and response["Location"] == HOME
    stop.refresh_from_db()
    assert (stop.reason, stop.reason_choice.code, stop.reason_by) == (stored, code, operator)
    assert timezone.now() - stop.reason_at < timedelta(seconds=10)
    record = AuditRecord.objects.get(entity_type="machine", action="downtime_reason")
    assert (record.entity_id, record.actor, record.reason) == (stop.machine_id, operator, stored)
    assert record.changes == {"downtime": stop.pk, "reason": ["", stored]}
    after = text(ana.get(HOME))
    assert f"Reason saved for {stop.machine.code}." in after
    assert "Give reason" not in after


@pytest.mark.parametrize(
    "code,message",
    [
        ("", "Choose a reason."),
        ("MECH", "“MECH” is not an active downtime reason."),
        ("NO-SUCH", "“NO-SUCH” is not an active downtime reason."),
        ("inactive", "“MECH-HYD” is not an active downtime reason."),
    ],
)
def test_a_downtime_reason_must_be_an_active_reason_not_a_category(ana, stop, code, message):
    if code == "inactive":
        DowntimeReason.objects.filter(code="MECH-HYD").update(active=False)
        code = "MECH-HYD"
    response = ana.post(reverse("terminal:downtime", args=[stop.pk]), {"reason": code})
    assert response.status_code == 200
    assert message in text(response)
    stop.refresh_from_db()
    assert (stop.reason, stop.reason_choice, stop.reason_by) == ("", None, None)
    assert not AuditRecord.objects.filter(action="downtime_reason").exists()


def test_a_downtime_of_another_work_center_is_not_found(ana, two_machine_order):
    elsewhere = DowntimeRecord.objects.create(
        machine=first_op(two_machine_order).work_center.machines.first(),
        cause="idle",
        started_at=timezone.now(),
    )
    url = reverse("terminal:downtime", args=[elsewhere.pk])
    assert ana.get(url).status_code == 404
    assert ana.post(url, {"reason": "MECH-SPINDLE"}).status_code == 404
    elsewhere.refresh_from_db()
    assert elsewhere.reason == ""


def test_a_busy_terminals_typos_do_not_add_up_over_a_shift(
    terminal, operator, settings, monkeypatch
):
    """Windows are fixed: each starts with the first attempt after the last one ran out, so
    a few typos an hour never lock a terminal that signs people in all day."""
    settings.MES_TERMINAL_MAX_FAILURES = 2  # the terminal may try 6 times per window
    settings.MES_TERMINAL_LOCKOUT_SECONDS = 300
    start = timezone.now()
    for cycle in range(30):  # a typo and a sign-in every four minutes, for two hours
        at = start + timedelta(minutes=4 * cycle)
        monkeypatch.setattr(session.timezone, "now", lambda at=at: at)
        assert "Badge or PIN not recognised" in text(sign_in(terminal, "1001", "0000"))
        assert sign_in(terminal, "1001", "1234").status_code == 302, cycle
        terminal.post(reverse("terminal:sign_out"))
