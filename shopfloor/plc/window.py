"""A poll group's window under its lease: several workers may take a group's queue, and
only the one holding the group's lease polls it, so no two poll one group at once.

The lease (``plc:<group>``, :mod:`mes.leases`) is taken when a beat's task starts, for a
little longer than a window may last (:func:`.timing.poll_lease_seconds`), and given back
when the window ends, so the next beat may go to either worker. A worker killed in the
middle of a window never gives it back: it runs out by itself and the next beat's task on
another worker takes the group over. A task that finds the lease held skips its beat.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings

from mes.leases import new_holder, release_lease, take_lease

from .poller import CycleReport, poller_for
from .services import record_poll_beat
from .timing import poll_lease_seconds

logger = logging.getLogger("shopfloor.plc")


def poll_lease(group: str) -> str:
    """The name of the lease a worker holds while it polls ``group``."""
    return f"plc:{group}"


@dataclass(frozen=True)
class Window:
    group: str
    holder: str
    started: float  # wall clock (time.time()), as the debug log says
    ended: float
    reports: list[CycleReport]

    @property
    def state_changes(self) -> int:
        return sum(r.state_changes for r in self.reports)


def poll_window(group: str) -> Window | None:
    """One beat of ``group``: its devices' cycles for up to a beat, if this worker gets the
    group's lease; None when another worker holds it (this beat is skipped)."""
    beat = settings.MES_PLC_BEAT_MS / 1000
    lease, holder = poll_lease(group), new_holder()
    seconds = poll_lease_seconds(beat=beat, wait=settings.MES_PLC_WAIT_MS / 1000)
    grant = take_lease(lease, holder=holder, seconds=seconds)
    if not grant.taken:
        # Another worker's window still runs: it overran its beat, or a beat came late.
        logger.debug(
            "PLC group %s: %s polls it, this beat skips",
            group,
            grant.other,
            extra={"plc_group": group, "lease_holder": holder, "poll_skipped": True},
        )
        return None
    if grant.taken_over:
        logger.warning(
            "PLC group %s: taken over from %s, whose lease ran out (a worker died or stalled)",
            group,
            grant.other,
        )
    started = time.time()
    logger.debug(
        "PLC group %s: window begins",
        group,
        extra={"plc_group": group, "lease_holder": holder, "window_started": started},
    )
    try:
        reports = poller_for(group).run_window(beat)
    finally:
        ended = time.time()  # before the lease is given back: the next window begins after
        # Given back at once, so that the next beat may go to either worker.
        if not release_lease(lease, holder=holder):
            logger.warning(
                "PLC group %s: the window outlasted its lease of %.1f s; another worker took "
                "the group over",
                group,
                seconds,
            )
    for report in reports:
        logger.debug("PLC group %s cycle: %s", group, report.as_dict())
    record_poll_beat(
        group,
        cycles=len(reports),
        reads_failed=sum(r.failed for r in reports),
        seconds=max((r.seconds for r in reports), default=0.0),
    )
    window = Window(group, holder, started, ended, reports)
    logger.debug(
        "PLC group %s: window ends after %d cycles",
        group,
        len(reports),
        extra={
            "plc_group": group,
            "lease_holder": holder,
            "window_started": window.started,
            "window_ended": window.ended,
            "cycles": len(reports),
        },
    )
    return window
