"""The Celery app reaches its configured broker: kombu's filesystem transport by default,
Redis when CELERY_BROKER_URL says so (CI's PostgreSQL run)."""

import os
import time
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


# --- The embedded transport (mes/broker.py) -------------------------------------------------


def _filesystem_connection(folder):
    """A connection of the embedded transport on its own folder. Kombu keeps declared
    exchanges in a process-wide state, so each test uses a queue name of its own."""
    from kombu import Connection

    return Connection(
        "filesystem://",
        transport="mes.broker:Transport",
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        },
    )


def test_the_embedded_broker_uses_the_whole_message_transport():
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return  # Redis in this run; nothing of ours between Celery and the broker.
    from mes.broker import Transport

    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)


def test_a_message_file_that_does_not_decode_is_set_aside_and_the_next_one_delivered(
    tmp_path, caplog
):
    with _filesystem_connection(tmp_path) as conn:
        queue = conn.SimpleQueue("jobs-decode")
        try:
            # What kombu's own transport leaves behind when its publisher is killed mid-write.
            (tmp_path / "0000_00000000-dead.jobs-decode.msg").write_bytes(b"")
            (tmp_path / "0001_00000000-half.jobs-decode.msg").write_bytes(b'{"body": "eyJh')
            queue.put({"n": 1})
            message = queue.get(timeout=5)
            message.ack()
            assert message.payload == {"n": 1}
        finally:
            queue.close()
    corrupt = sorted(p.name for p in (tmp_path / ".corrupt").iterdir())
    assert corrupt == ["0000_00000000-dead.jobs-decode.msg", "0001_00000000-half.jobs-decode.msg"]
    assert "does not decode" in caplog.text
    assert not list(tmp_path.glob("*.msg"))


def test_a_message_is_invisible_to_consumers_until_it_is_whole(tmp_path, monkeypatch):
    import mes.broker

    seen_while_writing = []
    real_fsync = os.fsync

    def fsync_and_peek(fd):
        # The publisher has written the bytes but not yet renamed the file: a consumer
        # (or a kill at this moment) finds nothing under a name it would take.
        visible = [
            p.name for p in tmp_path.iterdir() if p.name.partition(".")[2] == "jobs-whole.msg"
        ]
        seen_while_writing.append(visible)
        real_fsync(fd)

    monkeypatch.setattr(mes.broker.os, "fsync", fsync_and_peek)
    with _filesystem_connection(tmp_path) as conn:
        queue = conn.SimpleQueue("jobs-whole")
        try:
            queue.put({"n": 2})
            monkeypatch.setattr(mes.broker.os, "fsync", real_fsync)
            message = queue.get(timeout=5)
            message.ack()
        finally:
            queue.close()
    assert seen_while_writing == [[]]
    assert message.payload == {"n": 2}


def test_partial_files_of_dead_publishers_are_swept_when_a_channel_opens(tmp_path):
    from mes.broker import PARTIAL_PREFIX, STALE_PARTIAL_SECONDS

    stale = tmp_path / f"{PARTIAL_PREFIX}1_dead-jobs-msg"
    fresh = tmp_path / f"{PARTIAL_PREFIX}2_busy-jobs-msg"
    for path in (stale, fresh):
        path.write_bytes(b'{"bo')
    old = time.time() - STALE_PARTIAL_SECONDS - 60
    os.utime(stale, (old, old))
    with _filesystem_connection(tmp_path) as conn:
        conn.default_channel  # noqa: B018 - opening the channel sweeps
    assert not stale.exists()
    assert fresh.exists()  # may be a publisher still writing
