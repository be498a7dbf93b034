"""A migrated, empty database kept as a template, so that each bench starts on a fresh
database without running every migration again (seconds each time; a copy takes a tenth).

The template is made from the first fresh database a bench migrates, and is keyed by the
Django version and the text of every migration on disk: a changed or added migration makes
a new one (the old ones are removed). SQLite: a file under var/bench-template/; PostgreSQL:
a ``mes_bench_template_<key>`` database copied with ``CREATE DATABASE ... TEMPLATE``.
Whatever goes wrong with a template falls back to migrating, as without one. After a copy
the bench still runs ``migrate`` (nothing to apply; the post-migrate signals run as usual).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "var" / "bench-template"
PREFIX = "mes_bench_template_"

logger = logging.getLogger(__name__)


def migrations_key() -> str:
    """Django's version and every migration file's text (Django set up, no database)."""
    import django
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    digest = hashlib.sha256(django.get_version().encode())
    for key in sorted(loader.disk_migrations):
        module = sys.modules[loader.disk_migrations[key].__module__]
        digest.update(repr(key).encode())
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _sqlite_path(database_url: str) -> Path:
    return Path(urlparse(database_url).path)


def _admin(database_url: str):
    import psycopg

    admin = urlparse(database_url)._replace(path="/postgres").geturl()
    return psycopg.connect(admin, autocommit=True)


def copy(database_url: str, key: str) -> bool:
    """Make the database (absent) a copy of the template; False when there is none."""
    if database_url.startswith("sqlite"):
        template = FOLDER / f"{key}.sqlite3"
        if not template.exists():
            return False
        shutil.copyfile(template, _sqlite_path(database_url))
        return True
    name = urlparse(database_url).path.lstrip("/")
    try:
        with _admin(database_url) as conn:
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [PREFIX + key]
            ).fetchone():
                return False
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{PREFIX}{key}"')
        return True
    except Exception as exc:  # a template in use, say: migrate instead
        logger.warning("bench: no copy of the template database (%s); migrating", exc)
        return False


def save(database_url: str, key: str) -> None:
    """Keep the freshly migrated database as the template (and drop older templates)."""
    from django.db import connections

    connections.close_all()
    for connection in connections.all():
        if hasattr(connection, "close_pool"):
            connection.close_pool()  # the pool keeps connections open: a template has none
    try:
        if database_url.startswith("sqlite"):
            FOLDER.mkdir(parents=True, exist_ok=True)
            partial = FOLDER / f"{key}.{os.getpid()}.partial"
            with (
                sqlite3.connect(_sqlite_path(database_url)) as source,
                sqlite3.connect(partial) as target,
            ):
                source.backup(target)
            source.close()
            target.close()
            os.replace(partial, FOLDER / f"{key}.sqlite3")
            for old in FOLDER.glob("*.sqlite3"):
                if old.name != f"{key}.sqlite3":
                    old.unlink(missing_ok=True)
            return
        name = urlparse(database_url).path.lstrip("/")
        with _admin(database_url) as conn:
            conn.execute(f'CREATE DATABASE "{PREFIX}{key}" TEMPLATE "{name}"')
            stale = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s",
                [PREFIX.replace("_", r"\_") + "%", PREFIX + key],
            ).fetchall()
            for (old,) in stale:
                conn.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
    except Exception as exc:  # made meanwhile by another bench, say: it will do
        logger.warning("bench: the template database was not kept (%s)", exc)
