"""Leases: a job that only one process may do at a time (a poll group's window, sending
beat's tasks) is done only by the holder of its lease.

A lease is a row (:class:`mes.models.Lease`) taken, renewed and given back with one
conditional UPDATE each, so it works alike on SQLite and PostgreSQL, whichever host the
processes run on. Its end is reckoned on the database's clock (``Now()``), never a
worker's, so clocks that differ between hosts cannot let two holders overlap. A holder that
dies (SIGKILL, a lost host) never gives its lease back: it runs out by itself, and the next
process that asks takes it over.

This is infrastructure bookkeeping, not an audited business state change: no audit record,
no outbox event (like :func:`shopfloor.plc.services.record_poll_beat`).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.db.models.functions import Now

from .models import Lease


@dataclass(frozen=True)
class Grant:
    """The answer to :func:`take_lease`."""

    taken: bool
    # Refused: who holds the lease. Taken over: whose lease ran out. Else empty.
    other: str = ""
    taken_over: bool = False


def new_holder() -> str:
    """A holder name that says where it runs (``host:pid:token``); the token makes two
    takers in one process (threads, or one task after another) different holders."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _outside_transactions() -> None:
    if transaction.get_connection().in_atomic_block:
        # Inside a transaction the row stays locked and unseen by the other processes until
        # commit, and a rollback would undo the lease while its holder goes on working.
        raise RuntimeError("Leases are taken and given back outside any transaction.")


def _until(seconds: float):
    return Now() + timedelta(seconds=seconds)


def _holder_and_ran_out(name: str) -> tuple[str, bool] | None:
    ran_out = ExpressionWrapper(Q(expires_at__lt=Now()), output_field=BooleanField())
    return (
        Lease.objects.filter(name=name)
        .annotate(ran_out=ran_out)
        .values_list("holder", "ran_out")
        .first()
    )


def take_lease(name: str, *, holder: str, seconds: float) -> Grant:
    """Take the lease ``name`` for ``seconds`` when it is free (given back, or never taken)
    or has run out; refuse while another holder's lease runs.

    The usual case is one UPDATE. A refusal costs one more SELECT (to say who holds it); a
    takeover an UPDATE more, conditional on the holder just read, so two processes that both
    saw the lease run out cannot both take it."""
    _outside_transactions()
    leases = Lease.objects.filter(name=name)

    def take_free() -> bool:
        free = leases.filter(expires_at__isnull=True)
        return bool(free.update(holder=holder, expires_at=_until(seconds), taken_at=Now()))

    if take_free():
        return Grant(taken=True)
    current = _holder_and_ran_out(name)
    if current is None:
        # The first time anyone asks: a free row (whoever inserts it first), then take it.
        Lease.objects.bulk_create([Lease(name=name)], ignore_conflicts=True)
        if take_free():
            return Grant(taken=True)
        current = _holder_and_ran_out(name) or ("", False)
    previous, ran_out = current
    if ran_out and leases.filter(holder=previous, expires_at__lt=Now()).update(
        holder=holder,
        expires_at=_until(seconds),
        taken_at=Now(),
        takeovers=F("takeovers") + 1,
    ):
        return Grant(taken=True, other=previous, taken_over=True)
    if ran_out:  # another taker was quicker: name it rather than the holder that ran out
        previous = (_holder_and_ran_out(name) or (previous, False))[0]
    return Grant(taken=False, other=previous)


def renew_lease(name: str, *, holder: str, seconds: float) -> bool:
    """Extend ``holder``'s lease to ``seconds`` from now. False when it is no longer theirs
    (given back, or taken over after it ran out): the holder must stop."""
    _outside_transactions()
    return bool(
        Lease.objects.filter(name=name, holder=holder, expires_at__isnull=False).update(
            expires_at=_until(seconds)
        )
    )


def release_lease(name: str, *, holder: str) -> bool:
    """Give the lease back so that the next taker need not wait for it to run out. False
    when it was not ``holder``'s any more (it ran out and was taken over)."""
    _outside_transactions()
    return bool(
        Lease.objects.filter(name=name, holder=holder, expires_at__isnull=False).update(
            expires_at=None
        )
    )
