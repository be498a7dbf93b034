"""The Celery app reaches its configured broker: kombu's filesystem transport by default,
Redis when CELERY_BROKER_URL says so (CI's PostgreSQL run)."""

import uuid
from urllib.parse import urlparse

from django.conf import settings

from mes.celery import app

from .support import port_open, require


def test_message_round_trip_through_the_configured_broker():
    url = settings.CELERY_BROKER_URL
    if url.startswith("redis://"):
        parsed = urlparse(url)
        require(port_open(parsed.hostname, parsed.port or 6379), f"Redis at {url}")
    queue_name = f"mes-test-{uuid.uuid4().hex[:8]}"
    payload = {"hello": "floor", "id": uuid.uuid4().hex}
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=3)
        simple = conn.SimpleQueue(queue_name)
        try:
            simple.put(payload)
            message = simple.get(timeout=5)
            message.ack()
            assert message.payload == payload
        finally:
            simple.queue.delete()
            simple.close()
