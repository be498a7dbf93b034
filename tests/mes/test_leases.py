"""Leases (mes.leases): taken when free or run out, refused while another holder's runs,
renewed and given back only by their holder, and run out by themselves on the database's
clock. Committed for real (``transaction=True``): a lease is only worth something when the
other processes see it.

The personas are holders: a poller on worker A, its twin on worker B, and a holder that
died (SIGKILL) without giving its lease back.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from mes.leases import Grant, new_holder, release_lease, renew_lease, take_lease
from mes.models import Lease
from tests.support import run_together

A = "host-a:101:aaaa"
B = "host-b:202:bbbb"
DEAD = "host-c:303:dead"
NAME = "plc:hall-a"

pytestmark = pytest.mark.django_db(transaction=True)


def run_out(name: str = NAME) -> None:
    """What the passing of time does to a lease: its end is in the past."""
    Lease.objects.filter(name=name).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_the_first_taker_gets_a_lease_nobody_asked_for_yet():
    assert take_lease(NAME, holder=A, seconds=5) == Grant(taken=True)
    lease = Lease.objects.get(name=NAME)
    assert lease.holder == A and lease.takeovers == 0
    assert lease.expires_at > timezone.now() + timedelta(seconds=3)


def test_a_held_lease_is_refused_naming_its_holder():
    take_lease(NAME, holder=A, seconds=5)
    assert take_lease(NAME, holder=B, seconds=5) == Grant(taken=False, other=A)
    assert take_lease(NAME, holder=A, seconds=5) == Grant(taken=False, other=A)  # not twice
    assert Lease.objects.get(name=NAME).holder == A


def test_a_lease_given_back_is_free_at_once():
    take_lease(NAME, holder=A, seconds=60)
    assert release_lease(NAME, holder=A)
    assert take_lease(NAME, holder=B, seconds=5) == Grant(taken=True)  # no takeover
    assert Lease.objects.get(name=NAME).takeovers == 0


def test_only_the_holder_renews_or_gives_back():
    take_lease(NAME, holder=A, seconds=1)
    assert not renew_lease(NAME, holder=B, seconds=60)
    assert not release_lease(NAME, holder=B)
    assert renew_lease(NAME, holder=A, seconds=60)
    assert Lease.objects.get(name=NAME).expires_at > timezone.now() + timedelta(seconds=50)
    assert release_lease(NAME, holder=A)
    assert not release_lease(NAME, holder=A)  # given back already
    assert not renew_lease(NAME, holder=A, seconds=60)  # given back: take it again instead


def test_a_dead_holders_lease_runs_out_and_is_taken_over():
    take_lease(NAME, holder=DEAD, seconds=5)
    run_out()
    assert take_lease(NAME, holder=A, seconds=5) == Grant(taken=True, other=DEAD, taken_over=True)
    lease = Lease.objects.get(name=NAME)
    assert (lease.holder, lease.takeovers) == (A, 1)
    # The dead holder, were it only stalled, has lost it: it can neither renew nor give back.
    assert not renew_lease(NAME, holder=DEAD, seconds=5)
    assert not release_lease(NAME, holder=DEAD)
    assert Lease.objects.get(name=NAME).holder == A


def test_a_holder_renews_a_lease_that_ran_out_while_nobody_took_it():
    take_lease(NAME, holder=A, seconds=5)
    run_out()
    assert renew_lease(NAME, holder=A, seconds=5)
    assert take_lease(NAME, holder=B, seconds=5) == Grant(taken=False, other=A)


def test_a_lease_runs_out_by_itself_on_the_database_clock():
    take_lease(NAME, holder=DEAD, seconds=0.3)
    assert not take_lease(NAME, holder=A, seconds=5).taken
    time.sleep(0.5)
    assert take_lease(NAME, holder=A, seconds=5).taken_over


def test_leases_of_different_names_are_apart():
    assert take_lease("plc:hall-a", holder=A, seconds=5).taken
    assert take_lease("plc:hall-b", holder=B, seconds=5).taken
    assert take_lease("beat:celery", holder=B, seconds=5).taken


def race(calls) -> list:
    """Run ``calls`` in threads (one database connection each) released together."""
    results = run_together(calls, what="a taker")
    assert all(isinstance(r, Grant) for r in results), results
    return results


@pytest.mark.parametrize("before", ["never taken", "given back", "run out"])
def test_of_racing_takers_exactly_one_gets_the_lease(before):
    if before != "never taken":
        take_lease(NAME, holder=DEAD, seconds=5)
        release_lease(NAME, holder=DEAD) if before == "given back" else run_out()
    holders = [f"host-{i}:{i}:racer" for i in range(6)]
    grants = race([lambda h=h: take_lease(NAME, holder=h, seconds=5) for h in holders])
    winners = [h for h, g in zip(holders, grants, strict=True) if g.taken]
    assert len(winners) == 1
    assert Lease.objects.get(name=NAME).holder == winners[0]
    assert all(g.other == winners[0] for g in grants if not g.taken)
    assert Lease.objects.get(name=NAME).takeovers == (1 if before == "run out" else 0)


def test_leases_are_refused_inside_a_transaction():
    with transaction.atomic(), pytest.raises(RuntimeError, match="outside any transaction"):
        take_lease(NAME, holder=A, seconds=5)
    assert not Lease.objects.exists()


def test_a_holder_says_where_it_runs():
    import os
    import socket

    holder = new_holder()
    host, pid, token = holder.split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert re.fullmatch(r"[0-9a-f]{8}", token) and new_holder() != holder


def test_takeovers_are_counted_in_the_metrics(client, settings):
    from tests.test_operations import sample, scrape

    settings.MES_METRICS_TOKEN = ""
    take_lease(NAME, holder=DEAD, seconds=5)
    run_out()
    take_lease(NAME, holder=A, seconds=5)
    text = scrape(client, REMOTE_ADDR="127.0.0.1")
    assert sample(text, "mes_lease_takeovers_total", lease=NAME) == 1
