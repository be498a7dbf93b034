"""Celery tasks of the production domain: thin, they call the services."""

from celery import current_app, shared_task

from .scheduling.services import replan_if_needed


@shared_task(acks_late=True, ignore_result=True)
def replan_schedule() -> dict | None:
    """Re-plan when something changed (every second, by beat). On its own queue
    ``<default>.schedule`` (``mes.queues.Queues``): a re-plan of a large plant takes seconds,
    and nothing urgent may wait behind it."""
    summary = replan_if_needed()
    if summary is None:
        return None
    if summary.changed:
        # schedule.changed events are waiting: deliver them now rather than at the next beat.
        current_app.send_task("erp_sync.tasks.deliver_outbox")
    return {"orders": summary.orders, "changed": summary.changed, "reason": summary.reason}
