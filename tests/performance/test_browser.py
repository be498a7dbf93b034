"""The plant board and the OEE page in a real browser (Debian's Chromium, headless, driven by
Playwright) against the live test server: 30 machines fit a 1920x1080 TV and a 1366x768
screen without scrolling, and a machine whose simulated PLC (a Modbus TCP server on
loopback, read by the real poller) goes down turns red on the board within 2 seconds.
Screenshots go to test-artifacts/board/."""

from __future__ import annotations

import re

import pytest

from mes import services
from mes.models import Operation
from shopfloor.downtime import declare_machine_down
from tests.factories import MachineFactory, WorkCenterFactory, make_work_order
from tests.shopfloor.conftest import (  # noqa: F401 - fixtures, used by name
    OPTIONS,
    clock,
    connect,
    connection,
    cycle,
    plc,
    plc_factory,
    poller,
    server_loop,
)

from ..browser import (  # noqa: F401 - fixtures, used by name
    LIVE_MS,
    Page,
    browser,
    expect,
    migration_data,
    new_context,
    plain_http_cookies,
    screenshot,
)

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
SIZES = {"tv": {"width": 1920, "height": 1080}, "laptop": {"width": 1366, "height": 768}}


def signed_in(new_context, user, viewport) -> Page:
    page = new_context(viewport=viewport).new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    return page


@pytest.fixture
def plant_of_30(supervisor, operator):
    """30 machines in 5 work centers; one runs a rush order, one is blocked by hand."""
    machines = []
    for w in range(5):
        wc = WorkCenterFactory(code=f"BRD-CELL-{w + 1}")
        machines += [MachineFactory(code=f"BRD-{w + 1}{m + 1}", work_center=wc) for m in range(6)]
    for m in machines[:20]:
        services.set_machine_state(m, state="running", actor=supervisor)
    wo = make_work_order(actor=supervisor, steps=1, quantity=400)
    services.update_work_order(wo, actor=supervisor, priority="rush")
    op = Operation.objects.get(work_order=wo)
    op = services.start_operation(op, operator=operator)
    services.report_quantity(op, actor=operator, good=120)
    declare_machine_down(machines[21], actor=supervisor, kind="blocked", note="No steel")
    return machines


def test_the_board_fits_the_screen_and_follows_a_plc_going_down(
    new_context, supervisor, plant_of_30, plc, poller, clock
):
    watched = plant_of_30[0]
    plc.state("running")
    connect(watched, connection(plc.port))
    for _ in range(3):
        cycle(poller, clock)  # the PLC says running (it already is)

    for name, viewport in SIZES.items():
        page = signed_in(new_context, supervisor, viewport)
        page.goto("/board/")
        tiles = page.locator(".tile")
        expect(tiles).to_have_count(31)  # 30 machines and the order's own
        # No scrolling: the page is no taller than the screen, every tile inside it.
        assert page.evaluate("document.documentElement.scrollHeight") <= viewport["height"]
        last = tiles.last.bounding_box()
        assert last is not None and last["y"] + last["height"] <= viewport["height"]
        expect(page.locator('[data-state="blocked"]')).to_contain_text("Blocked")
        expect(page.locator(".tile .rush").first).to_contain_text("Rush")
        screenshot(page, "board", f"board-{name}")

    tile = page.locator(f'[data-machine="{watched.code}"]')
    expect(tile).to_have_attribute("data-state", "running")
    plc.state("down")
    changes = 0
    for _ in range(5):  # a read is answered within a cycle or two
        changes += cycle(poller, clock).state_changes
        if changes:
            break
    assert changes == 1
    expect(tile).to_have_attribute("data-state", "down", timeout=LIVE_MS)
    expect(tile).to_contain_text("Down")
    expect(page.locator("#fresh")).to_contain_text("updated")
    screenshot(page, "board", "board-machine-down")


def test_the_oee_page_at_both_sizes(new_context, supervisor, plant_of_30):
    for name, viewport in SIZES.items():
        page = signed_in(new_context, supervisor, viewport)
        page.goto("/performance/?level=machine&range=today")
        expect(page.get_by_role("heading", name="OEE and losses")).to_be_visible()
        expect(page.locator("table.oee tbody tr")).to_have_count(31)
        expect(page.locator("svg.bars")).to_be_visible()
        screenshot(page, "board", f"oee-{name}")
