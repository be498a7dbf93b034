"""Celery tasks of the production domain: thin, they call the services."""

from celery import shared_task

from .scheduling.services import replan_if_needed


@shared_task(acks_late=True, ignore_result=True)
def replan_schedule() -> dict | None:
    summary = replan_if_needed()
    if summary is None:
        return None
    return {"orders": summary.orders, "changed": summary.changed, "reason": summary.reason}
