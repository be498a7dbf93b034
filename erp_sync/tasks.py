"""Celery tasks of the ERP side: thin, they call erp_sync.delivery."""

from celery import shared_task

from .delivery import deliver_pending


@shared_task(acks_late=True, ignore_result=True)
def deliver_outbox() -> dict:
    """One delivery pass (every second, by beat). On its own queue ``<default>.erp``
    (``mes.queues.Queues``), so that the ERP hears within seconds whatever else runs."""
    report = deliver_pending()
    return {"delivered": report.delivered, "failed": report.failed, "dead": report.dead}
