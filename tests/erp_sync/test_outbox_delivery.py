"""Outbox delivery against the ERP simulator on loopback: signatures, idempotency keys,
order per work order, retries with backoff, dead letters and replay; where deliveries may
go (allow-list, every resolved address, no redirects) and what a failure stores (never the
answer's body, one message for every connection failure)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection

from erp_sync import services as erp_services
from erp_sync.delivery import NO_ANSWER, backoff, deliver_pending, delivery_lag
from erp_sync.models import DeliveryStatus, ErpEndpoint, EventType, OutboxDelivery, OutboxEvent
from erp_sync.simulator import ErpState, serve
from erp_sync.transport import GuardedBackend, delivery_client
from mes import crypto, services
from tests.factories import make_work_order

SECRET = "test-secret-0123456789abcdef"


@pytest.fixture
def erp(tmp_path):
    """The simulator in a thread on a free loopback port."""
    state = ErpState(secret=SECRET, state_file=tmp_path / "erp.jsonl", slow_seconds=1.5)
    server = serve(state, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/events"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def endpoint(erp, db):
    endpoint, _, _ = erp_services.upsert_endpoint(
        "erp-test", url=erp.url, secret=SECRET, event_types=list(EventType.values), active=True
    )
    return endpoint


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.MES_OUTBOX_BACKOFF_BASE = 0
    settings.MES_OUTBOX_TIMEOUT = 1
    settings.MES_OUTBOX_PASS_SECONDS = 20


def _events_by_aggregate() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in OutboxEvent.objects.order_by("id"):
        out.setdefault(event.aggregate_key, []).append(str(event.event_id))
    return out


def _applied_by_aggregate(erp: ErpState) -> dict[str, list[str]]:
    by_id = {str(e.event_id): e.aggregate_key for e in OutboxEvent.objects.all()}
    out: dict[str, list[str]] = {}
    for record in erp.applied:
        out.setdefault(by_id[record["id"]], []).append(record["id"])
    return out


def _produce(supervisor, operator, orders: int = 3) -> None:
    for _ in range(orders):
        wo = make_work_order(actor=supervisor, steps=2)
        op = services.start_operation(wo.operations.get(sequence=10), operator=operator)
        services.report_quantity(op, actor=operator, good=10, scrap=1)
        services.complete_operation(op, actor=operator)


def test_events_are_signed_keyed_and_delivered_in_order(endpoint, erp, supervisor, operator):
    _produce(supervisor, operator)
    assert OutboxDelivery.objects.filter(status=DeliveryStatus.PENDING).count() > 10
    report = deliver_pending()
    assert report.failed == 0 and erp.rejected == 0
    assert _applied_by_aggregate(erp) == _events_by_aggregate()
    assert not OutboxDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()
    assert delivery_lag() == {"pending": 0, "dead": 0, "oldest_age_seconds": 0}
    types = {record["type"] for record in erp.applied}
    assert types == {"work_order.updated", "confirmation.created"}


def test_events_of_different_orders_go_out_at_once_and_each_order_in_turn(
    endpoint, erp, supervisor, settings
):
    """Up to MES_OUTBOX_CONCURRENCY POSTs in flight, never two of one order."""
    settings.MES_OUTBOX_CONCURRENCY = 4
    erp.fail_rate, erp.fail_mode, erp.slow_seconds = 1.0, "slow", 0.15  # slow, but in time
    for i in range(10):
        wo = make_work_order(actor=supervisor, release=False, number=f"WO-C{i}")
        services.release_work_order(wo, actor=supervisor)  # a second event of the order
    report = deliver_pending(budget_seconds=30)
    assert report.delivered == OutboxDelivery.objects.count() == 20
    assert _applied_by_aggregate(erp) == _events_by_aggregate()
    assert 1 < erp.most_in_flight <= 4


def test_signature_is_hmac_of_the_raw_body(endpoint, erp, supervisor):
    captured = {}

    class Capture:
        def post(self, url, content, headers):
            captured.update(url=url, body=content, headers=headers)
            raise __import__("httpx").ConnectError("stop here")

    make_work_order(actor=supervisor, release=False)
    deliver_pending(client=Capture(), budget_seconds=1)
    expected = "sha256=" + hmac.new(SECRET.encode(), captured["body"], hashlib.sha256).hexdigest()
    assert captured["headers"]["X-MES-Signature"] == expected
    envelope = json.loads(captured["body"])
    assert captured["headers"]["Idempotency-Key"] == envelope["id"]
    assert envelope["type"] == "work_order.updated"
    assert envelope["data"]["status"] == "planned"
    assert envelope["occurred_at"].endswith("Z")


@pytest.mark.parametrize("mode", ["500", "slow", "drop"])
def test_failures_are_retried_until_delivered_once(
    endpoint, erp, supervisor, operator, mode, settings
):
    erp.fail_rate, erp.fail_mode = 0.5, mode
    if mode == "slow":  # the simulator answers after the MES stopped waiting
        settings.MES_OUTBOX_TIMEOUT, erp.slow_seconds = 0.3, 0.6
    _produce(supervisor, operator, orders=1 if mode == "slow" else 2)
    for _ in range(60):
        deliver_pending(budget_seconds=5)
        if not OutboxDelivery.objects.filter(status=DeliveryStatus.PENDING).exists():
            break
    assert not OutboxDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()
    assert _applied_by_aggregate(erp) == _events_by_aggregate()  # once each, in order
    assert OutboxDelivery.objects.filter(attempts__gt=1).exists()
    if mode == "slow":
        assert erp.duplicates > 0  # applied, answered too late, retried, deduplicated


def test_a_failing_head_blocks_later_events_of_the_same_order_only(endpoint, erp, supervisor):
    first = make_work_order(actor=supervisor, release=False, number="WO-A")
    make_work_order(actor=supervisor, release=False, number="WO-B")
    services.release_work_order(first, actor=supervisor)
    blocked = OutboxDelivery.objects.filter(aggregate_key="WO-A").order_by("id")
    head = blocked.first()
    OutboxDelivery.objects.filter(pk=head.pk).update(locked_until="2999-01-01T00:00:00Z")
    deliver_pending(budget_seconds=2)
    assert [r["aggregate"] for r in erp.applied] == ["WO-B"]
    assert set(blocked.values_list("status", flat=True)) == {DeliveryStatus.PENDING}


def test_dead_letter_after_max_age_then_replay(endpoint, erp, supervisor, settings):
    settings.MES_OUTBOX_MAX_AGE = 0
    erp.fail_rate = 1.0
    make_work_order(actor=supervisor, release=False)
    deliver_pending(budget_seconds=2)
    dead = OutboxDelivery.objects.get()
    assert dead.status == DeliveryStatus.DEAD and "HTTP 500" in dead.last_error
    assert delivery_lag()["dead"] == 1
    erp.fail_rate = 0.0
    assert erp_services.replay_deliveries([dead]) == 1
    deliver_pending(budget_seconds=2)
    dead.refresh_from_db()
    assert dead.status == DeliveryStatus.DELIVERED
    assert len(erp.applied) == 1


def test_wrong_secret_is_not_delivered(endpoint, erp, supervisor):
    erp_services.upsert_endpoint(
        "erp-test",
        url=erp.url,
        secret="another-secret-123456",
        event_types=["work_order.updated"],
        active=True,
    )
    make_work_order(actor=supervisor, release=False)
    report = deliver_pending(budget_seconds=1)
    assert report.delivered == 0 and erp.rejected >= 1
    assert OutboxDelivery.objects.get().status == DeliveryStatus.PENDING


def test_endpoint_gets_only_its_event_types_and_delete_keeps_dead_letters(erp, supervisor):
    endpoint, _, _ = erp_services.upsert_endpoint(
        "orders-only",
        url=erp.url,
        secret=SECRET,
        event_types=["work_order.updated"],
        active=True,
    )
    make_work_order(actor=supervisor, steps=1)
    assert set(OutboxDelivery.objects.values_list("event__event_type", flat=True)) == {
        "work_order.updated"
    }
    pending = OutboxDelivery.objects.count()
    assert erp_services.delete_endpoint(endpoint) == pending
    assert set(OutboxDelivery.objects.values_list("status", "endpoint_code")) == {
        ("dead", "orders-only")
    }


def test_backoff_is_capped_exponential(settings):
    settings.MES_OUTBOX_BACKOFF_BASE, settings.MES_OUTBOX_BACKOFF_CAP = 2, 60
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4, 5, 6, 10)] == [2, 4, 8, 16, 32, 60, 60]


def test_simulator_reports_what_it_applied(erp):
    with urllib.request.urlopen(erp.url.replace("/events", "/received"), timeout=5) as response:
        assert json.loads(response.read()) == {
            "applied": [],
            "duplicates": 0,
            "duplicate_ids": [],
            "rejected": 0,
            "most_in_flight": 0,
        }


# --- where deliveries may go, and what a failure stores -----------------------------------------


class Recorder:
    """A loopback HTTP server that records each request and answers as told."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status, self.reason, self.body, self.headers = 200, None, b"", {}

    def handler(self):
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append({"headers": dict(self.headers), "body": body})
                self.send_response(recorder.status, recorder.reason)
                for name, value in recorder.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(recorder.body)))
                self.end_headers()
                self.wfile.write(recorder.body)

        return Handler


@pytest.fixture
def recorder():
    state = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state.port = server.server_address[1]
    state.url = f"http://127.0.0.1:{state.port}/events"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def _endpoint_at(url: str) -> None:
    erp_services.upsert_endpoint(
        "erp-test", url=url, secret=SECRET, event_types=["work_order.updated"], active=True
    )


def _one_failed_delivery(supervisor, **deliver) -> OutboxDelivery:
    make_work_order(actor=supervisor, release=False)
    report = deliver_pending(budget_seconds=3, **deliver)
    assert (report.delivered, report.failed) == (0, 1), report
    delivery = OutboxDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    return delivery


def test_a_target_no_longer_allowed_is_a_failure_with_its_reason(
    endpoint, erp, supervisor, settings
):
    settings.MES_OUTBOUND_ALLOWED_HOSTS = []  # say, the operator narrowed the allow-list

    delivery = _one_failed_delivery(supervisor)

    assert delivery.last_error == "target address 127.0.0.1 is not allowed (loopback)"
    assert erp.applied == [] and erp.rejected == 0  # nothing reached the receiver


def test_a_name_is_resolved_once_checked_and_connected_to_as_resolved(
    recorder, supervisor, settings
):
    """DNS rebinding: the address checked is the address connected to. ``.invalid`` never
    resolves for real, so the delivery reaching the receiver went to the checked address."""
    asked = []

    def resolve(host, port, **kwargs):
        asked.append(host)
        answer = "127.0.0.1" if len(asked) == 1 else "169.254.169.254"
        return socket.getaddrinfo(answer, port, **kwargs)

    _endpoint_at(f"http://erp.invalid:{recorder.port}/events")
    make_work_order(actor=supervisor, release=False)

    client = delivery_client(timeout=2, backend=GuardedBackend(resolve=resolve))
    report = deliver_pending(budget_seconds=3, client=client)

    assert report.delivered == 1, OutboxDelivery.objects.get().last_error
    assert asked == ["erp.invalid"]
    # The URL's host still names the server (virtual hosts; TLS sends and verifies it too).
    assert recorder.requests[0]["headers"]["Host"] == f"erp.invalid:{recorder.port}"


def test_every_address_a_name_resolves_to_is_checked(recorder, supervisor):
    def resolve(host, port, **kwargs):
        return [
            *socket.getaddrinfo("127.0.0.1", port, **kwargs),
            *socket.getaddrinfo("169.254.169.254", port, **kwargs),
        ]

    _endpoint_at(f"http://erp.invalid:{recorder.port}/events")
    client = delivery_client(timeout=2, backend=GuardedBackend(resolve=resolve))

    delivery = _one_failed_delivery(supervisor, client=client)

    assert delivery.last_error == "target address 169.254.169.254 is not allowed (link-local)"
    assert recorder.requests == []


def test_a_redirect_is_not_followed(recorder, erp, supervisor):
    recorder.status, recorder.headers = 302, {"Location": erp.url}  # loopback, even allowed
    _endpoint_at(recorder.url)

    delivery = _one_failed_delivery(supervisor)

    assert delivery.last_error == "HTTP 302 Found"
    assert len(recorder.requests) == 1 and erp.applied == []


def test_an_error_answer_is_stored_as_its_status_never_its_body(recorder, supervisor, caplog):
    recorder.status, recorder.reason = 500, "Leaky phrase root:x:0:0"
    recorder.body = b"<h1>db password hunter2</h1>"
    _endpoint_at(recorder.url)

    delivery = _one_failed_delivery(supervisor)

    assert delivery.last_error == "HTTP 500 Internal Server Error"
    assert "hunter2" not in caplog.text  # not even in the log


@pytest.fixture
def silent_port():
    """Accepts connections, never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture
def foreign_port():
    """Another protocol's server: a banner, then the connection closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    thread = threading.Thread(target=serve)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


@pytest.mark.parametrize("target", ["closed", "silent", "foreign"])
def test_connection_failures_all_read_the_same(target, request, supervisor, settings):
    """Refused, timed out or not HTTP: one message, so the MES is no port scanner."""
    settings.MES_OUTBOX_TIMEOUT = 0.3
    if target == "closed":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    else:
        port = request.getfixturevalue(f"{target}_port")
    _endpoint_at(f"http://127.0.0.1:{port}/events")

    delivery = _one_failed_delivery(supervisor)

    assert delivery.last_error == NO_ANSWER == "no HTTP answer (connection failed or timed out)"


def test_a_scheme_stored_before_the_check_is_a_failure_not_a_crash(erp, supervisor):
    endpoint = ErpEndpoint(
        code="erp-old", url="ftp://127.0.0.1/events", event_types=["work_order.updated"]
    )
    endpoint.set_secret(SECRET)
    endpoint.save()

    delivery = _one_failed_delivery(supervisor)

    assert delivery.last_error == "scheme 'ftp' is not allowed; use http or https"


def test_a_secret_the_keys_cannot_read_is_a_failure_that_says_so(
    endpoint, erp, supervisor, settings
):
    settings.MES_FIELD_ENCRYPTION_KEYS = crypto.keys_from_environment("", "another SECRET_KEY")

    delivery = _one_failed_delivery(supervisor)

    assert delivery.last_error.startswith("The stored secret cannot be decrypted")
    assert erp.applied == []
    _endpoint_at(erp.url)  # entered again, under the keys now in force
    assert deliver_pending(budget_seconds=2).delivered == 1


def test_the_secret_is_kept_encrypted_and_signs_what_the_receiver_verifies(
    endpoint, erp, supervisor, caplog
):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret_encrypted FROM {ErpEndpoint._meta.db_table}")
        (stored,) = cursor.fetchone()
    assert stored.startswith("fernet:") and SECRET not in stored

    make_work_order(actor=supervisor, release=False)
    report = deliver_pending(budget_seconds=2)

    assert report.delivered == 1
    assert (len(erp.applied), erp.rejected) == (1, 0)  # the simulator checks the HMAC
    assert SECRET not in caplog.text
