"""The Content-Security-Policy holds in a real browser (Debian's Chromium): the screens
people open (lists, work order, traveler, boards, quality, terminal sign-in, work center and
operation), the admin and the API's Swagger page render without a single violation, so
nothing inline is left that the policy would block (and an injected inline script would
not run)."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory, make_work_order

from .browser import (  # noqa: F401 - fixtures, used by name
    Page,
    bind,
    browser,
    expect,
    migration_data,
    new_context,
    plain_http_cookies,
)

pytestmark = pytest.mark.django_db(transaction=True)

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " +
                    (e.sourceFile || "") + ":" + (e.lineNumber || ""));
});
"""


def violations(page: Page, console: list[str]) -> list[str]:
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # scripts that run after load (htmx, Swagger UI)
    return page.evaluate("window.__csp") + [m for m in console if "Content Security" in m]


def open_clean(page: Page, console: list[str], url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status < 400, (url, response and response.status)
    header = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in header and "unsafe-inline" not in header.split("style-src")[0], (
        header
    )
    found = violations(page, console)
    assert not found, f"{url}: {found}"


def test_no_screen_violates_the_content_security_policy(new_context, live_server, operator):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    admin.set_password("root-pass-2026")
    admin.save(update_fields=["password"])
    wo = make_work_order(actor=admin)

    context = new_context()
    context.add_init_script(WATCH)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))

    open_clean(page, console, "/accounts/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("root-pass-2026")
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(live_server.url + "/accounts/login/")
    for url in (
        "/",
        "/work-orders/",
        f"/work-orders/{wo.number}/",
        f"/work-orders/{wo.number}/traveler/",
        "/machines/",
        "/board/",
        "/performance/",
        "/performance/downtime/",
        "/performance/schedule/",
        "/quality/",
        "/quality/spc/",
        "/terminal/setup/",
        "/admin/",
        "/admin/mes/workorder/",
        f"/admin/mes/workorder/{wo.pk}/change/",
    ):
        open_clean(page, console, url)

    # Swagger UI: scripts from files only; it alone may set inline styles.
    response = page.goto("/api/v1/docs/")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info")).to_be_visible(timeout=10_000)
    assert not violations(page, console)

    # The terminal: sign-in and the work center screen (htmx polling).
    terminal = new_context()
    terminal.add_init_script(WATCH)
    bind(terminal, live_server, wo.operations.order_by("sequence").first().work_center)
    screen = terminal.new_page()
    screen_console: list[str] = []
    screen.on("console", lambda m: screen_console.append(m.text))
    open_clean(screen, screen_console, "/terminal/")
    screen.get_by_label("Badge").fill("1001")
    screen.get_by_label("PIN").fill("1234")
    screen.get_by_role("button", name="Sign in", exact=True).click()
    expect(screen.get_by_role("button", name="Sign out")).to_be_visible()
    screen.wait_for_timeout(2000)  # a poll or two
    assert not violations(screen, screen_console)
    op = wo.operations.order_by("sequence").first()
    open_clean(screen, screen_console, f"/terminal/op/{op.pk}/")
