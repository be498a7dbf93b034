"""Celery beat that sends tasks only while it holds the plant's beat lease, so that a second
beat (a standby, or one started twice by mistake) sends nothing until the first is gone.

``CELERY_BEAT_SCHEDULER`` names :class:`LeasedScheduler`, so ``celery -A mes beat`` and a
worker's embedded beat (``worker --beat``, the demo) both use it. The lease is a row in
the database (``beat:<MES_CELERY_QUEUE>``, :mod:`mes.leases`), which every engine the MES
runs on has; a Redis lock (celery-redbeat) would need Redis, which the embedded demo does
not run.

The holder renews its lease every third of ``MES_BEAT_LEASE_SECONDS`` and sends only while
its last renewal is younger than two thirds of it: the third left over covers a holder
that stalls between looking and sending. A standby asks as often; when the holder dies
(SIGKILL, a lost host) its lease runs out and the standby takes over within
``MES_BEAT_LEASE_SECONDS`` plus a third. It sends at once whatever is overdue, once per
entry. A beat that stops cleanly gives the lease back, and the standby takes over at its
next look. Each beat process keeps its own schedule file (``--schedule``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import PersistentScheduler
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from mes.leases import new_holder, release_lease, renew_lease, take_lease

logger = logging.getLogger("mes.beat")


def beat_lease() -> str:
    """The name of the lease the sending beat holds: one per plant (per default queue, as
    plants sharing a broker keep apart by it)."""
    return f"beat:{settings.CELERY_TASK_DEFAULT_QUEUE}"


class LeasedScheduler(PersistentScheduler):
    """A :class:`~celery.beat.PersistentScheduler` that sends due tasks only while it holds
    the beat lease; otherwise it stands by, asking for the lease at every look."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not taken here: beat also builds a scheduler (lazy) just to print its banner.
        self.lease_seconds = float(settings.MES_BEAT_LEASE_SECONDS)
        self._holder = ""  # made in the process that sends (an embedded beat is forked)
        self._role = ""  # "sending" or "standby", as the last look found (for the log)
        self._may_send_until = float("-inf")  # monotonic
        self._next_look = float("-inf")  # monotonic
        super().__init__(*args, **kwargs)

    @property
    def holds_lease(self) -> bool:
        """Whether this beat may send now (it surely holds the lease)."""
        return time.monotonic() < self._may_send_until

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if time.monotonic() >= self._next_look:
            self._look()
        until_look = max(0.0, self._next_look - time.monotonic())
        if not self.holds_lease:
            return min(until_look, self.max_interval)
        return min(super().tick(*args, **kwargs), until_look)

    def _look(self) -> None:
        """Renew the lease if it is this beat's, else ask for it."""
        started = time.monotonic()
        self._next_look = started + self.lease_seconds / 3
        name = beat_lease()
        try:
            # Renewed even when the last renewal's term has passed (a stall, a slow
            # database): the lease is still this beat's unless another one took it over.
            if self._holder and renew_lease(name, holder=self._holder, seconds=self.lease_seconds):
                self._may_send_until = started + self.lease_seconds * 2 / 3
                return
            self._may_send_until = float("-inf")
            self._holder = self._holder or new_holder()
            grant = take_lease(name, holder=self._holder, seconds=self.lease_seconds)
        except DatabaseError:
            # A holder goes on sending until its last renewal's term ends (no other beat
            # can take the lease before); the next look tries again.
            logger.exception("beat: the lease %s could not be renewed or taken", name)
            return
        finally:
            close_old_connections()  # a broken connection is replaced at the next look
        if grant.taken:
            self._may_send_until = started + self.lease_seconds * 2 / 3
            how = f"taken over from {grant.other}, whose lease ran out" if grant.other else "free"
            self._say("sending", logging.INFO, "this beat sends the tasks (lease %s %s)", name, how)
        elif self._role == "sending":
            self._say("standby", logging.WARNING, "%s took the lease %s over", grant.other, name)
        else:
            self._say("standby", logging.INFO, "%s holds the lease %s", grant.other, name)

    def _say(self, role: str, level: int, message: str, *args: Any) -> None:
        """Log a change of role, once."""
        if role != self._role:
            self._role = role
            suffix = "" if role == "sending" else "; this beat stands by"
            logger.log(level, "beat: " + message + suffix, *args)

    def close(self) -> None:
        """Give the lease back (a clean stop), so that a standby takes over at its next look
        instead of waiting for the lease to run out."""
        self._may_send_until = float("-inf")
        if self._holder:
            try:
                release_lease(beat_lease(), holder=self._holder)
            except DatabaseError:
                logger.exception("beat: the lease could not be given back; it will run out")
            finally:
                close_old_connections()
        super().close()
