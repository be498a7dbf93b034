"""Parallel sign-in guesses: the lockout holds when many requests for one badge arrive at
once, each on its own database connection as gunicorn's workers would have them (the count
is one conditional UPDATE in the database, so processes and threads meet the same limit).

These tests commit for real (``transaction=True``)."""

from __future__ import annotations

import pytest
from django.test import Client

from mes.accounts import create_operator
from shopfloor.terminal import session
from shopfloor.terminal.models import SignInThrottle
from tests.support import run_together

from .conftest import bind, sign_in, signed_in_id

PARALLEL = 30
TIMEOUT = 60


def parallel(calls) -> list:
    return run_together(calls, timeout=TIMEOUT, what="a sign-in")


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_pins_evaluate_no_more_guesses_than_the_limit(op10, monkeypatch, settings):
    settings.MES_TERMINAL_MAX_FAILURES = 5
    create_operator(username="ana", first_name="Ana", badge="1001", pin="1234")
    evaluated: list[str] = []
    real = session.operator_by_badge

    def counting(badge, pin):  # a spy: the real check runs, each call is counted
        evaluated.append(pin)
        return real(badge, pin)

    monkeypatch.setattr(session, "operator_by_badge", counting)
    # Every request comes from its own enrolled terminal (so the per-terminal limit does not
    # stop them first): only the badge's limit holds them back.
    clients = [bind(Client(), op10.work_center) for _ in range(PARALLEL)]
    pins = [f"{9000 + i}" for i in range(PARALLEL)]
    results = parallel(
        [lambda c=c, p=p: sign_in(c, "1001", p) for c, p in zip(clients, pins, strict=True)]
    )
    assert all(getattr(r, "status_code", None) == 200 for r in results), results
    assert len(evaluated) == 5, f"{len(evaluated)} guesses evaluated, limit 5"
    assert SignInThrottle.objects.get(key="badge:1001").attempts == 5
    # Locked now, also for the right PIN.
    assert "Too many wrong tries" in sign_in(clients[0], "1001", "1234").content.decode()
    assert signed_in_id(clients[0]) is None


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_from_one_terminal_stop_at_its_limit(op10, monkeypatch, settings):
    settings.MES_TERMINAL_MAX_FAILURES = 2  # a terminal may try 3 x 2 = 6 times
    evaluated: list[str] = []
    real = session.operator_by_badge
    monkeypatch.setattr(
        session, "operator_by_badge", lambda b, p: evaluated.append(b) or real(b, p)
    )
    token = bind(Client(), op10.work_center).cookies[session.COOKIE].value

    def guess(i: int):
        client = Client()  # one terminal (one cookie), many browsers' worth of requests
        client.cookies[session.COOKIE] = token
        return sign_in(client, f"{5000 + i}", "1234")

    parallel([lambda i=i: guess(i) for i in range(PARALLEL)])
    assert len(evaluated) == 6
