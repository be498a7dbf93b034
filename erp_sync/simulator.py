"""A stand-in ERP that receives the MES's webhooks, for the demo and the tests.

It verifies each body's HMAC signature, applies each ``Idempotency-Key`` once (remembered
in a JSON-lines file, so across restarts too), logs what it got, and can be told to fail a
share of requests: HTTP 500, a slow answer, or a dropped connection.

    GET  /received   -> {"applied": [...], "duplicates": n, "duplicate_ids": [...], "rejected": n}
    POST /_control   <- {"fail_rate": 0.5, "fail_mode": "500|slow|drop", "slow_seconds": 10}
    POST <any other> <- an event
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("erp_simulator")
FAIL_MODES = ("500", "slow", "drop")


class ErpState:
    def __init__(
        self,
        *,
        secret: str,
        state_file: Path | None,
        fail_rate: float = 0.0,
        fail_mode: str = "500",
        slow_seconds: float = 10.0,
        seed: int = 1,
    ) -> None:
        self.secret = secret.encode()
        self.state_file = state_file
        self.fail_rate, self.fail_mode, self.slow_seconds = fail_rate, fail_mode, slow_seconds
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.applied: list[dict] = []
        self.seen: set[str] = set()
        self.duplicates = 0
        self.duplicate_ids: list[str] = []  # the key of each duplicate, in arrival order
        self.rejected = 0
        self.in_flight = 0  # events being handled right now
        self.most_in_flight = 0  # the most at once, so far
        if state_file and state_file.exists():
            for line in state_file.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.applied.append(record)
                    self.seen.add(record["id"])

    def verify(self, body: bytes, signature: str) -> bool:
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature or "")

    def should_fail(self) -> str | None:
        with self.lock:
            return self.fail_mode if self.random.random() < self.fail_rate else None

    def apply(self, key: str, event: dict) -> bool:
        """Record the event once per key; False for a duplicate."""
        with self.lock:
            if key in self.seen:
                self.duplicates += 1
                self.duplicate_ids.append(key)
                return False
            record = {
                "id": key,
                "type": event.get("type"),
                "aggregate": (event.get("data") or {}).get("work_order")
                or (event.get("data") or {}).get("number"),
                "occurred_at": event.get("occurred_at"),
                "received_at": time.time(),
            }
            self.seen.add(key)
            self.applied.append(record)
            if self.state_file:
                with self.state_file.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
            return True


def make_handler(state: ErpState):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY the second waits for
        # the sender's delayed ACK (about 40 ms per event on Linux).
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):  # route through logging, not stderr
            log.debug("%s %s", self.address_string(), fmt % args)

        def _json(self, status: int, body: dict) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self):
            if self.path.rstrip("/") == "/received":
                with state.lock:
                    body = {
                        "applied": list(state.applied),
                        "duplicates": state.duplicates,
                        "duplicate_ids": list(state.duplicate_ids),
                        "rejected": state.rejected,
                        "most_in_flight": state.most_in_flight,
                    }
                return self._json(200, body)
            return self._json(404, {"detail": "not here"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path.rstrip("/") == "/_control":
                change = json.loads(body or b"{}")
                with state.lock:
                    state.fail_rate = float(change.get("fail_rate", state.fail_rate))
                    state.fail_mode = change.get("fail_mode", state.fail_mode)
                    state.slow_seconds = float(change.get("slow_seconds", state.slow_seconds))
                return self._json(200, {"fail_rate": state.fail_rate, "fail_mode": state.fail_mode})
            if not state.verify(body, self.headers.get("X-MES-Signature", "")):
                with state.lock:
                    state.rejected += 1
                log.warning("rejected a request with a bad signature")
                return self._json(401, {"detail": "bad signature"})
            key = self.headers.get("Idempotency-Key", "")
            try:
                event = json.loads(body)
            except ValueError:
                return self._json(400, {"detail": "not JSON"})
            with state.lock:
                state.in_flight += 1
                state.most_in_flight = max(state.most_in_flight, state.in_flight)
            try:
                return self._event(state, key, event)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _event(self, state: ErpState, key: str, event: dict):
            mode = state.should_fail()
            if mode == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if mode == "500":
                return self._json(500, {"detail": "simulated failure"})
            applied = state.apply(key, event)
            log.info("%s %s %s", "applied" if applied else "duplicate", event.get("type"), key)
            if mode == "slow":
                time.sleep(state.slow_seconds)  # applied, but answers after the sender gave up
            return self._json(200, {"applied": applied})

    return Handler


def serve(state: ErpState, host: str = "127.0.0.1", port: int = 8089) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(state))
    server.daemon_threads = True
    return server
