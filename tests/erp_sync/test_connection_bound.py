"""Bounded database connections: gunicorn serving the API on PostgreSQL, driven by 16
concurrent ERP clients for 30 s, answers no 5xx, and PostgreSQL never sees more connections
from it than its workers times the pool's size (mes/settings.py, MES_DB_POOL_*).

The server has more threads than pooled connections on purpose: without the pool every
thread would hold a connection of its own and the count would pass the bound."""

from __future__ import annotations

import logging
import random
import signal
import sys
import threading
import time
from collections import Counter

import httpx
import psycopg
import pytest
from django.db import connection

from erp_sync.auth import create_api_client
from erp_sync.models import Scope
from tests.factories import make_routing
from tests.support import ChildProcess, free_port, port_open, wait_until, worker_environment

from .helpers import API, due, iso

log = logging.getLogger(__name__)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # PostgreSQL-only by nature (not a missing service): the suite also runs on SQLite.
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="connection pooling is PostgreSQL's"
    ),
]

WORKERS = 2
THREADS = 8  # per worker: more than the pool holds
POOL_MAX = 3  # per worker process
BOUND = WORKERS * POOL_MAX
CLIENTS = 16
SECONDS = 30
ORDERS = 24  # work orders the clients read and update
APP_NAME = "mes-connection-bound-test"  # how the server's connections are told apart


def server_connections(conn: psycopg.Connection, database: str) -> int:
    """The server's connections to the test database now (the test's own have another
    application name)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
        [database, APP_NAME],
    ).fetchone()
    return row[0]


def erp_traffic(base: str, token: str, product: str, until: float, seen: Counter) -> None:
    """One ERP client until ``until``: lists, reads and updates work orders on one
    keep-alive connection; counts (method, status) in its own ``seen``, a call that got no
    answer as status 0."""
    rng = random.Random()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        while time.monotonic() < until:
            number = f"POOL-{rng.randrange(ORDERS):03d}"
            roll = rng.random()
            try:
                if roll < 0.3:
                    method, response = "list", client.get(f"{API}/work-orders/?page_size=20")
                elif roll < 0.6:
                    method, response = "detail", client.get(f"{API}/work-orders/{number}/")
                else:
                    body = {
                        "product": product,
                        "quantity": rng.randrange(10, 500),
                        "due_date": iso(due(rng.randrange(3, 30))),
                    }
                    method, response = "put", client.put(f"{API}/work-orders/{number}/", json=body)
                seen[method, response.status_code] += 1
            except httpx.HTTPError as exc:
                seen["error", 0] += 1
                log.warning("%s failed: %r", number, exc)


def test_sixteen_erp_clients_stay_within_the_pool_bound(tmp_path):
    database = connection.settings_dict["NAME"]
    product = make_routing(3).product.code
    tokens = [create_api_client(name=f"erp-{i}", scope=Scope.ERP)[1] for i in range(CLIENTS)]

    port = free_port()
    env = worker_environment(
        tmp_path,
        "pool",
        DEBUG="0",
        SECURE_COOKIES="0",
        PGAPPNAME=APP_NAME,
        MES_DB_POOL="1",
        MES_DB_POOL_MIN_SIZE="1",
        MES_DB_POOL_MAX_SIZE=str(POOL_MAX),
        MES_API_THROTTLE_RATE="1000000/min",
        LOG_LEVEL="WARNING",
    )
    env.pop("DB_CONN_MAX_AGE", None)
    server = ChildProcess(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "mes.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--worker-class",
            "gthread",
            "--threads",
            str(THREADS),
            "--log-level",
            "warning",
        ],
        env,
        tmp_path / "gunicorn.log",
    )
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as admin:
        server.start()
        try:
            seen, samples, elapsed = drive(port, admin, database, tokens, product, server)
        finally:
            server.kill(signal.SIGTERM)
        requests = sum(seen.values())
        log.info(
            "%d requests in %.1f s by %d clients; server connections: max %d of bound %d "
            "(%d samples); %s",
            requests,
            elapsed,
            CLIENTS,
            max(samples, default=0),
            BOUND,
            len(samples),
            dict(seen),
        )
        failed = {key: n for key, n in seen.items() if key[1] >= 500 or key[1] == 0}
        assert not failed, (failed, server.tail())
        assert set(seen) <= {("list", 200), ("detail", 200), ("put", 200)}, seen
        assert requests > 1000, seen  # the load was real
        assert samples and max(samples) >= 1, samples  # the sampler saw the server
        assert max(samples) <= BOUND, (max(samples), BOUND)
        # Stopped, the server has given its connections back.
        wait_until(
            "the server's connections to close",
            lambda: not server_connections(admin, database),
            15,
        )


def drive(port, admin, database, tokens, product, server) -> tuple[Counter, list[int], float]:
    """Create the orders, then run the clients for SECONDS while sampling the server's
    connections; the (method, status) counts, the samples and the seconds it took."""
    wait_until("gunicorn", lambda: port_open("127.0.0.1", port), 30, server)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        auth = {"Authorization": f"Bearer {tokens[0]}"}
        for i in range(ORDERS):  # the orders exist before the load starts
            body = {"product": product, "quantity": 100, "due_date": iso(due())}
            response = client.put(f"{API}/work-orders/POOL-{i:03d}/", json=body, headers=auth)
            assert response.status_code == 201, (response.status_code, response.text[:500])

    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(server_connections(admin, database))
            time.sleep(0.05)

    counts = [Counter() for _ in tokens]
    started = time.monotonic()
    until = started + SECONDS
    sampler = threading.Thread(target=sample)
    clients = [
        threading.Thread(target=erp_traffic, args=(base, token, product, until, seen))
        for token, seen in zip(tokens, counts, strict=True)
    ]
    sampler.start()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(SECONDS + 60)
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join(10)
    assert not any(thread.is_alive() for thread in clients), "a client hung"
    return sum(counts, Counter()), samples, elapsed
