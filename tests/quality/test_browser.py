"""The quality loop in a real browser: Debian's Chromium (headless, driven by Playwright)
against the live test server. An operator records checks on the shop-floor terminal, an
out-of-spec value holds the operation, a supervisor signs the disposition on the quality
pages (a wrong password first), and the operator resumes. Screenshots of every screen go to
test-artifacts/quality/."""

from __future__ import annotations

import re

import pytest

from mes import services
from mes.models import Operation
from mes.quality import services as quality
from mes.quality.models import InspectionResult, Nonconformance, Signature

from ..browser import (  # noqa: F401 - fixtures, used by name
    LANDSCAPE,
    LIVE_MS,
    Page,
    browser,
    expect,
    migration_data,
    new_context,
    plain_http_cookies,
    screenshot,
    terminal_page,
)

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
HOLD = re.compile("Quality hold")  # the banner; case-sensitive, unlike the refusal's words

pytestmark = pytest.mark.django_db(transaction=True)


def shot(page: Page, name: str) -> None:
    screenshot(page, "quality", name)


def supervisor_page(new_context, username: str, password: str) -> Page:
    page = new_context().new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    return page


def record(page: Page, value: str) -> None:
    """On the check screen: type the value of Hole diameter and record it."""
    expect(page.get_by_test_id("spec")).to_contain_text("min 7.95 \u2013 max 8.05 mm")
    page.get_by_label("Hole diameter").fill(value)
    page.get_by_role("button", name="Record", exact=True).click()


@pytest.fixture
def op10(quality_order) -> Operation:
    """Ready, at a work center with one machine; its step measures Hole diameter."""
    return quality_order.operations.select_related("work_center").order_by("sequence").first()


# --- The scenario -------------------------------------------------------------------------------


def test_out_of_spec_holds_the_operation_until_a_supervisor_signs(
    new_context, live_server, operator, quality_lead, op10
):
    label = op10.label
    page = terminal_page(new_context, live_server, op10.work_center, "1001", "1234")

    # 1. Start: the first piece is due, in a banner above everything on the screen.
    page.get_by_role("link", name=label).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(label)
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("status")).to_contain_text(f"Started {label}")
    expect(page.get_by_test_id("op-status")).to_have_text("Running")
    banner = page.locator(".check-due")
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_contain_text("Check due: Hole diameter, first piece")
    page.evaluate("window.scrollTo(0, 0)")
    top = banner.bounding_box()
    assert top["y"] < page.get_by_role("heading", level=1).bounding_box()["y"]
    assert top["y"] + top["height"] <= LANDSCAPE["height"]
    shot(page, "operation-check-due")

    # The check screen: the spec, the value, the verdict in words.
    banner.get_by_role("link", name="Record check").click()
    expect(page.get_by_role("heading", level=2, name="Hole diameter · first piece")).to_be_visible()
    shot(page, "check-first-piece")
    record(page, "8.01")
    verdict = page.get_by_test_id("verdict")
    expect(verdict).to_contain_text("In spec")
    expect(verdict).to_contain_text("Hole diameter 8.01 mm")
    expect(verdict).to_have_attribute("role", "status")
    shot(page, "check-in-spec")
    first = InspectionResult.objects.get()
    assert (first.sample_key, first.values, first.verdict, first.recorded_by) == (
        "first",
        ["8.01"],
        "pass",
        operator,
    )

    # 2. 50 good reported: piece 50 is due; it measures out of spec.
    page.get_by_role("link", name=label).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(label)
    expect(page.locator(".check-due")).to_have_count(0)
    page.get_by_label("Good quantity").fill("50")
    page.get_by_role("button", name="Report").click()
    expect(page.get_by_role("status")).to_contain_text(f"Reported 50 good and 0 scrap on {label}.")
    expect(banner).to_contain_text("Check due: Hole diameter, piece 50")
    shot(page, "operation-piece-50-due")
    banner.get_by_role("link", name="Record check").click()
    expect(page.get_by_role("heading", level=2, name="Hole diameter · piece 50")).to_be_visible()
    record(page, "8.09")
    expect(verdict).to_contain_text("Out of spec")
    expect(verdict).to_have_attribute("role", "alert")
    expect(verdict).to_contain_text("Hole diameter 8.09 mm")
    nc = Nonconformance.objects.get()
    expect(verdict).to_contain_text(f"Nonconformance {nc.number} opened.")
    expect(verdict).to_contain_text("The operation is on quality hold")
    shot(page, "check-out-of-spec")
    assert (nc.status, nc.reaction, nc.result.sample_key) == ("open", "hold_operation", "piece:50")
    op10.refresh_from_db()
    assert op10.status == "paused"

    # Back on the operation screen: paused, held; neither Resume nor Complete is offered.
    page.get_by_role("link", name=label).click()
    expect(page.get_by_test_id("op-status")).to_have_text("Paused")
    hold = page.get_by_role("alert").filter(has_text=HOLD)
    expect(hold).to_have_count(1)
    expect(hold).to_contain_text(nc.number)
    expect(hold).to_contain_text("A supervisor must sign the disposition")
    expect(page.get_by_text("On quality hold: it goes on after a supervisor signs")).to_be_visible()
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    expect(page.get_by_role("button", name="Complete")).to_have_count(0)
    shot(page, "operation-quality-hold")
    op10.refresh_from_db()
    assert op10.status == "paused"

    # 3. Quinn, a supervisor, in a browser of her own: the list, the record, the form.
    quinn = supervisor_page(new_context, "quinn", PASSWORD)
    quinn.goto("/quality/")
    expect(quinn.get_by_role("heading", name="Nonconformances")).to_be_visible()
    row = quinn.get_by_role("row").filter(has_text=nc.number)
    expect(row).to_contain_text("Open")
    expect(row).to_contain_text("Hole diameter, piece 50")
    shot(quinn, "nonconformances")
    row.get_by_role("link", name=nc.number).click()
    expect(quinn.get_by_role("heading", level=1)).to_contain_text(nc.number)
    expect(quinn.get_by_text("Not signed yet.")).to_be_visible()
    quinn.get_by_role("radio", name="Use as is").check()
    quinn.get_by_role("radio", name="Approved").check()
    quinn.get_by_label("Comment").fill("Within the assembly's fit; released by quality.")

    # 4. A wrong password is refused in words, and nothing is signed.
    quinn.get_by_label("Your password (to sign)").fill("not-my-password")
    shot(quinn, "disposition-form")
    quinn.get_by_role("button", name="Sign disposition").click()
    expect(quinn.get_by_text("The password is not correct; nothing was signed.")).to_be_visible()
    expect(quinn.get_by_test_id("signature")).to_have_count(0)
    expect(quinn.get_by_role("radio", name="Use as is")).to_be_checked()  # kept for the retry
    expect(quinn.get_by_role("radio", name="Approved")).to_be_checked()
    shot(quinn, "disposition-wrong-password")
    assert Signature.objects.count() == 0
    nc.refresh_from_db()
    assert (nc.status, nc.disposition) == ("open", "")

    quinn.get_by_label("Your password (to sign)").fill(PASSWORD)
    quinn.get_by_role("button", name="Sign disposition").click()
    expect(quinn.get_by_text(f"{nc.number} dispositioned and signed.")).to_be_visible()
    signature = quinn.get_by_test_id("signature")
    expect(signature).to_have_count(1)
    expect(signature).to_contain_text("Quinn Meyer")
    expect(signature).to_contain_text("Approved")
    expect(signature).to_contain_text("valid: the record is as signed")
    expect(quinn.get_by_role("heading", level=1)).to_contain_text("Closed")
    expect(quinn.get_by_role("button", name="Sign disposition")).to_have_count(0)
    shot(quinn, "disposition-signed")
    signed = Signature.objects.get()
    assert (signed.signer, signed.meaning) == (quality_lead, "approved")
    nc.refresh_from_db()
    assert (nc.status, nc.disposition) == ("closed", "use_as_is")

    # 5. The terminal drops the hold by itself; Resume now runs the operation again.
    expect(page.get_by_role("alert").filter(has_text=HOLD)).to_have_count(0, timeout=LIVE_MS)
    page.get_by_role("button", name="Resume").click(timeout=LIVE_MS)
    expect(page.get_by_role("status")).to_contain_text(f"Resumed {label}.")
    expect(page.get_by_test_id("op-status")).to_have_text("Running")
    shot(page, "operation-resumed")
    op10.refresh_from_db()
    assert op10.status == "running"


# --- A full page load -----------------------------------------------------------------------------


def test_a_full_page_load_shows_the_quality_banner_once(new_context, live_server, operator, op10):
    op = services.start_operation(op10, operator=operator)
    quality.record_result(op, check=op.checks.get(), values=["8.09"], actor=operator)
    page = terminal_page(new_context, live_server, op10.work_center, "1001", "1234")
    page.goto(f"/terminal/op/{op10.pk}/")
    expect(page.get_by_test_id("op-status")).to_have_text("Paused")
    shot(page, "operation-held-full-load")
    expect(page.get_by_role("alert").filter(has_text=HOLD)).to_have_count(1, timeout=1000)
    expect(page.locator("#op-checks")).to_have_count(1, timeout=1000)
