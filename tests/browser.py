"""What the browser tests share: Debian's Chromium driven by Playwright (headless, never a
downloaded browser), the live test server, the data migrations' rows put back after
transactional tests emptied them, and a terminal bound to a work center with an operator
signed in.

Modules import the fixtures they use (``browser``, ``migration_data``, ``plain_http_cookies``,
``new_context``) and set ``pytestmark = pytest.mark.django_db(transaction=True)``."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.apps import apps as django_apps

from shopfloor.models import DowntimeReason
from shopfloor.terminal import session

from .factories import enrol_terminal
from .support import require

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra is not installed
    Browser = BrowserContext = Page = expect = sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
LANDSCAPE = {"width": 1024, "height": 768}
LIVE_MS = 3000  # changes made elsewhere show within 2 s; one more second for the browser


# --- Browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require(sync_playwright is not None, "playwright is not installed")
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # in between are ordinary synchronous calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def migration_data(browser, db):
    """Transactional tests empty every table after they ran, including the rows data
    migrations made; put back the roles, the downtime reason tree and the scrap reasons."""
    importlib.import_module("mes.migrations.0002_roles_and_audit_guard").create_roles(
        django_apps, None
    )
    importlib.import_module("shopfloor.terminal.migrations.0002_default_reasons").create_tree(
        DowntimeReason
    )
    importlib.import_module("mes.quality.migrations.0002_scrap_reasons").create(django_apps, None)


@pytest.fixture(autouse=True)
def plain_http_cookies(settings):
    # The live server speaks plain HTTP; Secure cookies would not come back from it.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


@pytest.fixture
def new_context(browser, live_server) -> Iterator:
    contexts: list[BrowserContext] = []

    def make(**options) -> BrowserContext:
        options.setdefault("viewport", LANDSCAPE)
        context = browser.new_context(base_url=live_server.url, locale="en-GB", **options)
        context.set_default_timeout(5000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Page, folder: str, name: str) -> None:
    """Under test-artifacts/<folder>/, for people to look at (not compared)."""
    (ARTIFACTS / folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / folder / f"{name}.png"))


def bind(context: BrowserContext, live_server, work_center) -> None:
    """Enrol a terminal and put its cookie into the browser (as setup would)."""
    token = enrol_terminal(work_center)
    context.add_cookies([{"name": session.COOKIE, "value": token, "url": live_server.url}])


def sign_in(page: Page, badge: str, pin: str) -> None:
    page.goto("/terminal/")
    page.get_by_label("Badge").fill(badge)
    page.get_by_label("PIN").fill(pin)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.wait_for_load_state("load")  # the deferred scripts (scanner, keypad) are running


def terminal_page(new_context, live_server, work_center, badge="1001", pin="1234") -> Page:
    context = new_context()
    bind(context, live_server, work_center)
    page = context.new_page()
    sign_in(page, badge, pin)
    return page
