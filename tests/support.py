"""Helpers for tests that need an external service: skip locally when it is absent, fail
under CI (``CI=true``), where every service must be there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# The command line that starts Celery with the MES's app, in this interpreter.
CELERY = (sys.executable, "-m", "celery", "-A", "mes")


def run_django(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``code`` run after ``django.setup()`` in a process of its own with exactly ``env``
    (settings are read once per process: a test of a setting needs a new one)."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "mes.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_together(calls, *, timeout: float = 30, what: str = "a racing call") -> list:
    """Run ``calls`` in threads released together by a barrier, each on a database
    connection of its own (closed when it ends). Each result is the call's return value or
    the exception it raised; a call still running after ``timeout`` fails the test."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(len(calls), timeout=timeout)
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except BaseException as exc:  # reported by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), f"{what} hung"
    return results


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, why: str) -> None:
    if condition:
        return
    if in_ci():
        pytest.fail(f"Required service missing under CI: {why}")
    pytest.skip(why)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    what: str, condition, timeout: float, *procs: ChildProcess, every: float = 0.1
) -> float:
    """Poll ``condition`` every ``every`` seconds until it holds (returns the seconds it
    took), or fail the test with the tail of each child's log."""
    import time

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(every)
    logs = "\n".join(f"--- {p.args[:6]}\n{p.tail()}" for p in procs)
    pytest.fail(f"timed out waiting for {what}\n{logs}")


def subprocess_database_url() -> str:
    """The database this test runs on (the test database), as a URL for a child process."""
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class ChildProcess:
    """A child process in its own process group with its output in a log file, killed for
    sure (the whole group) at the end."""

    def __init__(self, args: list[str], env: dict[str, str], log, cwd=None) -> None:
        import pathlib

        self.args, self.env, self.log = args, env, pathlib.Path(log)
        self.cwd = cwd or pathlib.Path(__file__).resolve().parent.parent
        self.proc = None

    def start(self) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            self.args,
            cwd=self.cwd,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int | None = None) -> None:
        import signal
        import subprocess

        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig if sig is not None else signal.SIGKILL)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def celery_worker(
    env: dict[str, str],
    tmp_path,
    queues: str,
    *,
    name: str = "worker",
    beat: bool = False,
    pool: tuple[str, ...] = ("--pool", "solo"),
    extra: tuple[str, ...] = (),
) -> ChildProcess:
    """A Celery worker on ``queues`` (comma separated: see :func:`worker_queues`), with
    embedded beat when ``beat`` (its schedule in ``tmp_path/beat-schedule``), solo pool
    unless ``pool`` says otherwise, logging to ``tmp_path/<name>.log``; not started yet.
    Workers made with the same ``name`` share the log, as restarts of one worker do."""
    return ChildProcess(
        [
            *CELERY,
            "worker",
            *(("--beat", "--schedule", str(tmp_path / "beat-schedule")) if beat else ()),
            *pool,
            "--loglevel",
            "INFO",
            "-Q",
            queues,
            "--hostname",
            f"{name}.{env.get('MES_CELERY_QUEUE', 'celery')}@%h",
            *extra,
        ],
        env,
        tmp_path / f"{name}.log",
    )


def celery_worker_with_beat(
    env: dict[str, str],
    tmp_path,
    queues: str,
    *,
    pool: tuple[str, ...] = ("--pool", "solo"),
    extra: tuple[str, ...] = (),
) -> ChildProcess:
    """A Celery worker with embedded beat on ``queues``, logging to ``tmp_path/worker.log``
    with its beat schedule beside (see :func:`celery_worker`); not started yet."""
    return celery_worker(env, tmp_path, queues, beat=True, pool=pool, extra=extra)


def celery_beat(env: dict[str, str], tmp_path, *, name: str = "beat") -> ChildProcess:
    """``celery beat`` as Procfile runs it (its own process), with a schedule file of its own
    (``tmp_path/<name>-schedule``: two beats on one host must not share one), logging to
    ``tmp_path/<name>.log``; not started yet."""
    return ChildProcess(
        [
            *CELERY,
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(tmp_path / f"{name}-schedule"),
        ],
        env,
        tmp_path / f"{name}.log",
    )


def redis_broker() -> str:
    """A Redis broker for a test that needs one whatever the suite's broker: the suite's own
    when it is Redis (CI's PostgreSQL run), else Redis on 127.0.0.1:6379, database 15 (as
    CI's; each run's queues have names of their own). Skips (fails under CI) without it."""
    from urllib.parse import urlparse

    from django.conf import settings

    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://"):
        broker = "redis://127.0.0.1:6379/15"
    parsed = urlparse(broker)
    require(port_open(parsed.hostname, parsed.port or 6379), f"Redis at {broker}")
    return broker


def worker_queues(env: dict[str, str], *kinds: str) -> str:
    """The queues, for ``-Q``, that the tasks of a child started with ``env`` go to (see
    ``mes.queues.Queues``): those of ``kinds`` (``default``, ``erp``, ``schedule``,
    ``booking``, ``plc``), or all of them."""
    from mes.queues import KINDS, Queues

    groups = [g.strip() for g in env.get("MES_PLC_GROUPS", "default").split(",") if g.strip()]
    queues = Queues(env.get("MES_CELERY_QUEUE", "").strip() or "celery", tuple(groups))
    return ",".join(queues.names(kinds or KINDS))


def erp_simulator(
    env: dict[str, str], tmp_path, secret: str, *extra: str
) -> tuple[ChildProcess, int]:
    """The ERP simulator on a free loopback port with ``secret`` (and ``extra`` options),
    logging to ``tmp_path/erp.log``; not started yet. Returns it and its port."""
    port = free_port()
    args = [sys.executable, "manage.py", "erp_simulator", "--port", str(port), "--secret", secret]
    return ChildProcess([*args, *extra], env, tmp_path / "erp.log"), port


def worker_environment(tmp_path, name: str, **extra: str) -> dict[str, str]:
    """The environment of a worker (or any child) on this test's database and broker, with
    queues of its own (the broker may be shared with other runs): a default queue named for
    this test, the others derived from it, and a PLC poll group of its own (``plc.<group>``)
    unless ``extra`` names the groups; requires Redis when the suite's broker is Redis."""
    import uuid
    from urllib.parse import urlparse

    from django.conf import settings

    broker = settings.CELERY_BROKER_URL
    if broker.startswith("redis://"):
        parsed = urlparse(broker)
        require(port_open(parsed.hostname, parsed.port or 6379), f"Redis at {broker}")
    unique = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        "SECRET_KEY": f"{name}-test",
        "DATABASE_URL": subprocess_database_url(),
        "CELERY_BROKER_URL": broker,
        "MES_CELERY_QUEUE": f"{name}-test-{unique}",
        "MES_PLC_GROUPS": f"t{unique}",
        "MES_VAR_DIR": str(tmp_path / "var"),
        **extra,
    }


def clear_cache() -> None:
    """Empty this test process's cache. A Redis cache is shared by the pytest-xdist workers
    (each has its own KEY_PREFIX, see conftest): only this worker's keys are deleted, where
    ``cache.clear()`` would empty the whole Redis database under the other worker's feet."""
    from django.conf import settings
    from django.core.cache import cache

    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    if not prefix or "RedisCache" not in settings.CACHES["default"]["BACKEND"]:
        cache.clear()
        return
    client = cache._cache.get_client(None, write=True)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
