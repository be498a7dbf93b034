"""A shared terminal as the browser sees it: bound to a work center by the signed cookie a
supervisor's setup sets, with an operator signed in (by badge and PIN, through the view).

Helpers read what a screen shows (its visible text, the hidden fields of its forms), so the
tests post exactly what a browser would post after looking at that screen."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from mes.models import Operation, WorkCenter, WorkOrder
from shopfloor.terminal import session

from ..factories import enrol_terminal, make_routing, make_work_order

# --- Reading screens ---------------------------------------------------------------------------


def text(response_or_html) -> str:
    """The visible text of a page or fragment, whitespace collapsed."""
    raw = getattr(response_or_html, "content", response_or_html)
    if isinstance(raw, bytes):
        raw = raw.decode()
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._current = {
                "action": attrs.get("hx-post") or attrs.get("action") or "",
                "hidden": {},
                "radios": [],
                "buttons": [],
            }
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None:
            kind = attrs.get("type", "text")
            if kind == "hidden":
                self._current["hidden"][attrs.get("name")] = attrs.get("value", "")
            elif kind == "radio":
                self._current["radios"].append(
                    (attrs.get("name"), attrs.get("value"), "checked" in attrs)
                )

        elif tag == "button" and self._current is not None and attrs.get("name"):
            self._current["buttons"].append((attrs["name"], attrs.get("value", "")))

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def forms(response_or_html) -> list[dict]:
    raw = getattr(response_or_html, "content", response_or_html)
    parser = _Forms()
    parser.feed(raw.decode() if isinstance(raw, bytes) else raw)
    return parser.forms


def act_url(op: Operation, action: str) -> str:
    return reverse("terminal:act", args=[op.pk, action])


def op_url(op: Operation) -> str:
    return reverse("terminal:operation", args=[op.pk])


def action_form(response_or_html, op: Operation, action: str) -> dict | None:
    """The form of ``action`` on a rendered operation screen (None when not offered)."""
    url = act_url(op, action)
    return next((f for f in forms(response_or_html) if f["action"] == url), None)


def shown_form(client: Client, op: Operation, action: str) -> dict:
    """Open the operation screen and return the hidden fields of ``action``'s form."""
    page = client.get(op_url(op))
    assert page.status_code == 200
    form = action_form(page, op, action)
    assert form is not None, f"no {action} form on: {text(page)[:400]}"
    return dict(form["hidden"])


def act(
    client: Client,
    op: Operation,
    action: str,
    fields: dict | None = None,
    *,
    htmx: bool = False,
    **data,
):
    """Tap ``action`` as shown on the screen now (or with the given hidden ``fields``);
    ``htmx`` as the page's htmx form does, else as a plain form post."""
    if fields is None:
        fields = shown_form(client, op, action)
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(act_url(op, action), {**fields, **data}, headers=headers)


# --- Binding and signing in --------------------------------------------------------------------


def bind(client: Client, work_center: WorkCenter) -> Client:
    """Enrol a terminal at ``work_center`` and give the test client its cookie, as the
    supervisor's setup does."""
    client.cookies[session.COOKIE] = enrol_terminal(work_center)
    return client


def sign_in(client: Client, badge: str, pin: str = ""):
    return client.post(reverse("terminal:sign_in"), {"badge": badge, "pin": pin})


def signed_in_id(client: Client) -> int | None:
    return (client.session.get(session.SESSION_KEY) or {}).get("id")


def first_op(work_order: WorkOrder) -> Operation:
    return work_order.operations.select_related("work_center").order_by("sequence").first()


def op_at(work_order: WorkOrder, sequence: int) -> Operation:
    return work_order.operations.select_related("work_center").get(sequence=sequence)


# --- Fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def one_machine_order(supervisor) -> WorkOrder:
    """Released, 100 pieces, three steps; op 10 is ready at a work center with one machine."""
    return make_work_order(actor=supervisor, routing=make_routing(3, machines_per_center=1))


@pytest.fixture
def two_machine_order(supervisor) -> WorkOrder:
    """Released, 100 pieces, two steps; op 10 is ready at a work center with two machines."""
    return make_work_order(actor=supervisor, routing=make_routing(2, machines_per_center=2))


@pytest.fixture
def op10(one_machine_order) -> Operation:
    return first_op(one_machine_order)


@pytest.fixture
def terminal_for(db) -> Callable[[WorkCenter], Client]:
    """A fresh browser (test client) bound to the given work center, nobody signed in."""

    def make(work_center: WorkCenter) -> Client:
        return bind(Client(), work_center)

    return make


@pytest.fixture
def terminal(terminal_for, op10) -> Client:
    """The terminal at op 10's work center (one machine), nobody signed in."""
    return terminal_for(op10.work_center)


@pytest.fixture
def ana(terminal, operator) -> Client:
    """Ana (badge 1001, PIN 1234) signed in on ``terminal``."""
    response = sign_in(terminal, "1001", "1234")
    assert response.status_code == 302, text(response)[:500]
    assert signed_in_id(terminal) == operator.pk
    return terminal


@pytest.fixture
def ben_for(terminal_for, other_operator) -> Callable[[WorkCenter], Client]:
    """Ben (badge 1002, PIN 5678) signed in on another terminal at the given work center."""

    def make(work_center: WorkCenter) -> Client:
        client = terminal_for(work_center)
        assert sign_in(client, "1002", "5678").status_code == 302
        return client

    return make
