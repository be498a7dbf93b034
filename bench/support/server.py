"""What the benchmark scripts share: a free loopback port, a PostgreSQL database that
exists (or is dropped and re-created), Django set up in-process on a fresh database, the
command line every database bench takes, and gunicorn serving the app on 127.0.0.1 for the
duration of a ``with``."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_sqlite_url(folder: Path) -> str:
    """A new, empty SQLite database file in ``folder`` (removing the previous run's)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "bench.sqlite3"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{db}"


def ensure_postgres_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def postgres_database_exists(url: str) -> bool:
    import psycopg

    parsed = urlparse(url)
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        query = "SELECT 1 FROM pg_database WHERE datname = %s"
        return conn.execute(query, [parsed.path.lstrip("/")]).fetchone() is not None


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 2, threads: int = 4) -> Iterator[int]:
    """gunicorn (gthread, keep-alive) on a free loopback port; yields the port once it
    accepts connections, and stops it afterwards."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "mes.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def recreate_postgres_database(url: str) -> None:
    """Drop a ``mes_bench*`` database (never another), so that the bench starts empty."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name.startswith("mes_bench"):
        raise SystemExit(f"--recreate drops only mes_bench* databases, not {name!r}.")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def in_process_django(
    database_url: str,
    var: Path,
    *,
    secret: str,
    recreate: bool,
    settings: str = "mes.settings",
    env: dict[str, str] | None = None,
) -> str:
    """Set up Django in this process on ``database_url`` (a fresh SQLite file under ``var``
    when empty; a PostgreSQL database created when missing, dropped first with
    ``recreate``) and migrate it. A fresh database starts as a copy of the migrated
    template (``bench.support.template``). The environment it sets (plus ``env``) is in
    ``os.environ`` afterwards, for the servers and workers a bench starts. Returns the
    database URL used."""
    from bench.support import template

    var.mkdir(parents=True, exist_ok=True)
    fresh = not database_url
    database_url = database_url or fresh_sqlite_url(var)
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": secret,
            "DEBUG": "0",
            "SECURE_COOKIES": "0",
            "MES_PLAIN_STATIC": "1",
            "MES_VAR_DIR": str(var),
            # The benches' ERP simulator and PLCs are on loopback.
            "MES_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SETTINGS_MODULE": settings,
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        }
    )
    import django
    from django.core.management import call_command

    django.setup()
    key = template.migrations_key()
    if database_url.startswith("postgres"):
        if recreate:
            recreate_postgres_database(database_url)
        fresh = not postgres_database_exists(database_url)
    copied = fresh and template.copy(database_url, key)
    if database_url.startswith("postgres") and not copied:
        ensure_postgres_database(database_url)
    call_command("migrate", verbosity=0)
    if fresh and not copied:
        template.save(database_url, key)
    return database_url


def database_arguments(parser: argparse.ArgumentParser, *, quick: str) -> None:
    """--quick (the CI smoke run), --database-url and --recreate, as every bench that
    fills a database takes them."""
    parser.add_argument("--quick", action="store_true", help=f"CI smoke run: {quick}")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="PostgreSQL database (default: a fresh SQLite file under var/)",
    )
    parser.add_argument(
        "--recreate", action="store_true", help="drop and re-create a mes_bench* PostgreSQL db"
    )


def sizes_of(args: argparse.Namespace, quick: dict, full: dict) -> argparse.Namespace:
    """Fill the options left unset with the smoke sizes (--quick) or the full ones."""
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


def require_empty(holds: bool, what: str) -> None:
    if holds:
        raise SystemExit(
            f"The bench database already holds {what}; give it an empty one "
            "(or --recreate a mes_bench* PostgreSQL database)."
        )
