"""Celery tasks of the shop floor: thin, they call the poller and the services."""

from __future__ import annotations

import logging

from celery import current_app, shared_task

from shopfloor.plc.services import book_pending_counts
from shopfloor.plc.window import poll_window

logger = logging.getLogger("shopfloor.plc")


# Not acknowledged late: a cycle lost with its worker is not worth redoing, the next beat
# brings a fresh one.
@shared_task(name="shopfloor.tasks.poll_plc_group", acks_late=False, ignore_result=True)
def poll_plc_group(group: str) -> None:
    """One beat of a poll group: its devices' cycle (several, for devices polled faster than
    the beat). Runs on the group's queue ``plc.<group>``; when several workers take it, only
    the one holding the group's lease polls (see ``shopfloor.plc.window``)."""
    window = poll_window(group)
    if window is not None and window.state_changes:
        # A machine stopped or started: re-plan now rather than at the next beat.
        current_app.send_task("mes.tasks.replan_schedule")


@shared_task(name="shopfloor.tasks.book_plc_counts", ignore_result=True)
def book_plc_counts() -> None:
    """Book the parts PLCs counted on the running operations (every few seconds). On its own
    queue ``<default>.booking`` (``mes.queues.Queues``), off the poll cycle: counts wait in
    the PLC status rows, so a late pass books them all, nothing is lost."""
    summary = book_pending_counts()
    if summary.booked or summary.unassigned:
        logger.info(
            "Booked PLC counts: %s machines on operations, %s unassigned (%s good, %s scrap)",
            summary.booked,
            summary.unassigned,
            summary.good,
            summary.scrap,
        )
