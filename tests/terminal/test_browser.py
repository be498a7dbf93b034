"""The terminal in a real browser: Debian's Chromium (headless, driven by Playwright) against
the live test server. Covers what only a browser shows: htmx swaps and polling, the keypad,
the keyboard-wedge scanner, the connection banner and the resend of a lost tap, and two
operators on two terminals. Screenshots of every screen go to test-artifacts/terminal/."""

from __future__ import annotations

import re
import time

import pytest
from django.utils import timezone

from mes import services
from mes.models import AuditRecord, Operation
from shopfloor.models import DowntimeRecord

from ..browser import (  # noqa: F401 - fixtures, used by name
    LANDSCAPE,
    LIVE_MS,
    Page,
    bind,
    browser,
    expect,
    migration_data,
    new_context,
    plain_http_cookies,
    screenshot,
    terminal_page,
)
from ..factories import make_routing, make_work_order
from .conftest import first_op

PORTRAIT = {"width": 800, "height": 1280}

pytestmark = pytest.mark.django_db(transaction=True)


def shot(page: Page, name: str) -> None:
    screenshot(page, "terminal", name)


def op_page(page: Page, op: Operation) -> Page:
    page.goto(f"/terminal/op/{op.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(op.label)
    return page


def audits(op: Operation, action: str) -> int:
    return AuditRecord.objects.filter(
        entity_type="operation", entity_id=op.pk, action=action
    ).count()


def wait_for_db(check, timeout: float = 3.0) -> None:
    """The live server commits in its own thread; wait until the test sees the row."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the database did not reach the expected state")
        time.sleep(0.05)


@pytest.fixture
def order(supervisor):
    """Released, 100 pieces; op 10 ready at a work center with two machines."""
    return make_work_order(actor=supervisor, routing=make_routing(2, machines_per_center=2))


@pytest.fixture
def op10(order) -> Operation:
    return first_op(order)


@pytest.fixture
def running(op10, operator) -> Operation:
    machine = op10.work_center.machines.order_by("code").first()
    return services.start_operation(op10, operator=operator, machine=machine)


# --- Scenarios ----------------------------------------------------------------------------------


def test_setup_sign_in_and_a_whole_operation(new_context, live_server, supervisor, operator, op10):
    supervisor.set_password("sup-pass-2026")
    supervisor.save(update_fields=["password"])
    wc = op10.work_center
    m1, m2 = wc.machines.order_by("code")
    page = new_context().new_page()

    # An unbound browser goes to setup, which asks a supervisor to log in first.
    page.goto("/terminal/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/terminal/setup/$"))
    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill("sup-pass-2026")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Set up this terminal")).to_be_visible()
    page.get_by_label("Work center").select_option(wc.code)
    shot(page, "setup")
    page.get_by_label("Terminal name").fill("Lathe cell, left")
    page.get_by_role("button", name="Enrol this browser").click()

    # Badge on the on-screen keypad; Enter moves on to the PIN, which is typed.
    expect(page.get_by_role("heading", name="Scan your badge and enter your PIN")).to_be_visible()
    expect(page.locator(".bar")).to_contain_text(wc.code)
    shot(page, "sign-in")
    page.get_by_label("Badge").click()
    for key in "1001":
        page.get_by_role("button", name=key, exact=True).click()
    expect(page.get_by_label("Badge")).to_have_value("1001")
    page.get_by_label("Badge").press("Enter")
    expect(page.get_by_label("PIN")).to_be_focused()
    page.get_by_label("PIN").fill("9999")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Badge or PIN not recognised.")
    expect(page.get_by_label("Badge")).to_have_value("1001")  # kept: only the PIN again
    shot(page, "sign-in-wrong-pin")
    page.get_by_label("PIN").fill("1234")
    page.get_by_role("button", name="Sign in", exact=True).click()

    # Work center: machines and the queue; landscape and portrait.
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator(".operator")).to_have_text("Ana Lopez")
    job = page.get_by_role("link", name=op10.label)
    expect(job).to_be_visible()
    expect(page.locator(".tiles")).to_contain_text(m1.code)
    shot(page, "work-center")
    page.set_viewport_size(PORTRAIT)
    shot(page, "work-center-portrait")
    page.set_viewport_size(LANDSCAPE)

    # Start on the chosen machine.
    job.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(op10.label)
    shot(page, "operation-ready")
    page.get_by_role("radio", name=m2.code).check()
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("status")).to_contain_text(f"Started {op10.label} on {m2.code}.")
    expect(page.get_by_test_id("op-status")).to_have_text("Running")
    shot(page, "operation-running")

    # Report good (on the keypad) and scrap with a reason.
    page.get_by_label("Good quantity").click()
    for key in "25":
        page.locator(".keypad").get_by_role("button", name=key, exact=True).click()
    expect(page.get_by_label("Good quantity")).to_have_value("25")
    page.get_by_label("Scrap quantity").fill("2")
    page.get_by_role("group", name="Scrap reason").get_by_label("Surface defect").check()
    page.get_by_role("button", name="Report").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Reported 25 good and 2 scrap on {op10.label}."
    )
    expect(page.get_by_test_id("op-good")).to_have_text("25")
    expect(page.get_by_test_id("op-scrap")).to_have_text("2")

    # Pause and Complete sit above the fold at 1024x768; Pause asks why, one tap per reason.
    page.evaluate("window.scrollTo(0, 0)")
    for name in ("Pause", "Complete"):
        box = page.get_by_role("button", name=name, exact=True).bounding_box()
        assert box["y"] + box["height"] <= LANDSCAPE["height"], name
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text(f"Why does {op10.label} pause?")).to_be_visible()
    shot(page, "operation-pause-reasons")
    page.get_by_role("button", name="Tool change").click()
    expect(page.get_by_role("status")).to_contain_text(f"Paused {op10.label}.")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    shot(page, "operation-paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text(f"Resumed {op10.label}.")

    # Complete below target: asked in words first.
    page.get_by_role("button", name="Complete").click()
    expect(page.get_by_text(f"Complete {op10.label} with 25 of 100?")).to_be_visible()
    shot(page, "operation-complete-confirm")
    op10.refresh_from_db()
    assert op10.status == "running"
    page.get_by_role("button", name="Yes, complete").click()
    expect(page.get_by_role("status")).to_contain_text(f"Completed {op10.label}.")
    shot(page, "operation-done")

    op10.refresh_from_db()
    assert (op10.status, op10.machine, op10.quantity_good, op10.quantity_scrap) == (
        "done",
        m2,
        25,
        2,
    )
    assert [
        (a, r)
        for a, r in AuditRecord.objects.filter(entity_type="operation", entity_id=op10.pk)
        .exclude(action="ready")
        .order_by("id")
        .values_list("action", "reason")
    ] == [
        ("start", ""),
        ("report_quantity", "Surface defect"),
        ("pause", "Tool change"),
        ("resume", ""),
        ("complete", ""),
    ]


def test_another_operator_completes_first_and_the_first_is_told_who(
    new_context, live_server, operator, other_operator, running, settings
):
    settings.MES_TERMINAL_POLL_MS = 60_000  # Ana's screen stays as it was: she acts on it
    wc = running.work_center
    ana = op_page(terminal_page(new_context, live_server, wc), running)
    ben = op_page(terminal_page(new_context, live_server, wc, "1002", "5678"), running)

    ben.get_by_role("button", name="Complete").click()
    ben.get_by_role("button", name="Yes, complete").click()
    expect(ben.get_by_role("status")).to_contain_text(f"Completed {running.label}.")

    ana.get_by_label("Good quantity").fill("5")
    ana.get_by_role("button", name="Report").click()
    alert = ana.get_by_role("alert").filter(has_text="Nothing was changed")
    expect(alert).to_contain_text(
        re.compile(
            rf"{re.escape(running.label)} was completed by Ben Okafor at \d\d:\d\d\. "
            r"Nothing was changed\."
        )
    )
    expect(ana.get_by_role("button", name="Report")).to_have_count(0)
    shot(ana, "operation-conflict")
    running.refresh_from_db()
    assert (running.status, running.quantity_good) == ("done", 0)
    assert audits(running, "report_quantity") == 0


def test_changes_made_elsewhere_show_within_two_seconds(
    new_context, live_server, operator, other_operator, supervisor, running
):
    page = op_page(terminal_page(new_context, live_server, running.work_center), running)
    page.get_by_label("Good quantity").fill("9")  # being typed: a refresh must not wipe it

    services.report_quantity(running, actor=other_operator, good=7)
    expect(page.get_by_test_id("op-good")).to_have_text("7", timeout=LIVE_MS)
    expect(page.get_by_label("Good quantity")).to_have_value("9")
    expect(page.locator("#fresh")).to_contain_text("updated")

    services.hold_work_order(running.work_order, actor=supervisor, reason="Drawing revision")
    expect(page.get_by_text("The order is on hold.")).to_be_visible(timeout=LIVE_MS)
    expect(page.get_by_test_id("op-status")).to_contain_text("Paused")
    expect(page.get_by_role("button", name="Report")).to_have_count(0)
    shot(page, "operation-held")

    # The work center screen follows too.
    page.goto("/terminal/")
    tile = page.locator(".tile").filter(has_text=running.machine.code)
    expect(tile).to_contain_text("paused")
    services.release_work_order(running.work_order, actor=supervisor)
    services.resume_operation(running, actor=other_operator)
    services.report_quantity(running, actor=other_operator, good=5)
    expect(tile).to_contain_text(f"{running.label} · 12 / 100", timeout=LIVE_MS)
    expect(tile).not_to_contain_text("paused")


def test_an_idle_terminal_signs_out_by_itself(new_context, live_server, operator, op10, settings):
    settings.MES_TERMINAL_IDLE_SECONDS = 2
    settings.MES_TERMINAL_POLL_MS = 500
    page = terminal_page(new_context, live_server, op10.work_center)
    expect(page.get_by_text("You were signed out after a while without use.")).to_be_visible(
        timeout=5000
    )
    expect(page.get_by_label("Badge")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    shot(page, "sign-in-idle")


def test_a_downtime_reason_from_the_tile(new_context, live_server, operator, running):
    services.set_machine_state(
        running.machine, state="down", actor=services.Actor.system(f"plc:{running.machine.code}")
    )
    record = DowntimeRecord.objects.create(
        machine=running.machine, operation=running, cause="down", started_at=timezone.now()
    )
    page = terminal_page(new_context, live_server, running.work_center)
    tile = page.locator(".tile").filter(has_text=running.machine.code)
    give = tile.get_by_role("link", name="Give reason")
    expect(give).to_be_visible()
    shot(page, "work-center-needs-reason")
    give.click()
    expect(
        page.get_by_role("heading", name=f"Why did {running.machine.code} stop?")
    ).to_be_visible()
    shot(page, "downtime-categories")
    page.get_by_role("link", name="Mechanical").click()
    shot(page, "downtime-reasons")
    page.get_by_role("button", name=re.compile(r"^Spindle")).click()
    expect(page.get_by_text(f"Reason saved for {running.machine.code}.")).to_be_visible()
    expect(tile.get_by_role("link", name="Give reason")).to_have_count(0)
    record.refresh_from_db()
    assert (record.reason, record.reason_by) == ("Mechanical > Spindle (unplanned)", operator)


def test_a_scanned_traveler_opens_the_operation(new_context, live_server, operator, op10, order):
    page = terminal_page(new_context, live_server, op10.work_center)
    page.keyboard.type(f"{order.number}/10", delay=5)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/terminal/op/{op10.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(op10.label)

    # Typed slowly (a person, not a scanner) it is not a scan.
    page.goto("/terminal/")
    page.keyboard.type(f"{order.number}/10", delay=150)
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    expect(page).to_have_url(re.compile(r"/terminal/$"))

    page.keyboard.type("NOPE-42", delay=5)
    page.keyboard.press("Enter")
    expect(page.get_by_text("Nothing known as “NOPE-42”. Scan a traveler barcode.")).to_be_visible()
    shot(page, "scan-unknown")


def test_a_tap_without_connection_is_sent_again_and_applied_once(
    new_context, live_server, operator, running
):
    page = op_page(terminal_page(new_context, live_server, running.work_center), running)
    banner = page.get_by_text("No connection to the server.")
    expect(banner).to_be_hidden()

    page.context.set_offline(True)
    page.get_by_label("Good quantity").fill("4")
    page.get_by_role("button", name="Report").click()
    expect(banner).to_be_visible()
    shot(page, "operation-offline")
    running.refresh_from_db()
    assert running.quantity_good == 0

    page.context.set_offline(False)
    expect(page.get_by_role("status")).to_contain_text(
        f"Reported 4 good and 0 scrap on {running.label}.", timeout=8000
    )
    expect(banner).to_be_hidden()
    running.refresh_from_db()
    assert running.quantity_good == 4
    assert audits(running, "report_quantity") == 1


def test_a_tap_whose_answer_was_lost_is_not_applied_twice(
    new_context, live_server, operator, running
):
    page = op_page(terminal_page(new_context, live_server, running.work_center), running)
    calls = []

    def lose_first_answer(route):
        calls.append(route.request.post_data)
        if len(calls) == 1:
            route.fetch()  # the server applies it ...
            route.abort("connectionreset")  # ... and the answer never arrives
        else:
            route.continue_()

    page.route(f"**/terminal/op/{running.pk}/report/", lose_first_answer)
    page.get_by_label("Good quantity").fill("3")
    page.get_by_role("button", name="Report").click()
    expect(page.get_by_text("No connection to the server.")).to_be_visible()
    wait_for_db(lambda: Operation.objects.get(pk=running.pk).quantity_good == 3)

    expect(page.get_by_role("status")).to_contain_text(
        f"Already done: Reported 3 good and 0 scrap on {running.label}.", timeout=8000
    )
    shot(page, "operation-already-done")
    assert len(calls) == 2 and calls[0] == calls[1]  # the same form, the same token
    running.refresh_from_db()
    assert running.quantity_good == 3
    assert audits(running, "report_quantity") == 1


# --- Known bugs (strict: they fail the run once fixed, so the marker gets removed) ---------------


def test_a_screen_without_polling_does_not_claim_the_connection_is_lost(
    new_context, live_server, operator, op10
):
    context = new_context()
    bind(context, live_server, op10.work_center)
    page = context.new_page()
    page.goto("/terminal/")
    expect(page.get_by_label("Badge")).to_be_visible()
    page.wait_for_timeout(7500)
    shot(page, "sign-in-after-7s")
    expect(page.get_by_text("No connection to the server.")).to_be_hidden()


def test_a_scan_is_accepted_while_a_quantity_field_has_focus(
    new_context, live_server, operator, running, order
):
    page = op_page(terminal_page(new_context, live_server, running.work_center), running)
    page.get_by_label("Good quantity").click()
    page.locator(".keypad").get_by_role("button", name="5", exact=True).click()
    page.keyboard.type(f"{order.number}/20", delay=5)
    page.keyboard.press("Enter")
    op20 = order.operations.get(sequence=20)
    expect(page).to_have_url(re.compile(rf"/terminal/op/{op20.pk}/$"))
