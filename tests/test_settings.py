"""Configuration from the environment fails loudly on bad values."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .support import port_open, require

ROOT = Path(__file__).resolve().parent.parent


def _run_with_settings(tmp_path, code: str, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "TIME_ZONE", "MES_CACHE_URL"}
    }
    base.update(MES_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="mes.settings", **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _load_settings(tmp_path, **env):
    code = (
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'], settings.TIME_ZONE, settings.DEBUG)"
    )
    return _run_with_settings(tmp_path, code, **env)


@pytest.mark.parametrize(
    "env,message",
    [
        ({"DEBUG": "maybe", "SECRET_KEY": "x"}, "DEBUG='maybe' is not a boolean"),
        ({"DEBUG": "0"}, "SECRET_KEY must be set when DEBUG is off"),
        ({"SECRET_KEY": "x", "TIME_ZONE": "Mars/Olympus"}, "is not an IANA time zone"),
        ({"SECRET_KEY": "x", "DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL is not usable"),
        (
            {"SECRET_KEY": "x", "MES_CACHE_URL": "memcached://127.0.0.1:11211"},
            "is not a Redis URL",
        ),
        (
            {"SECRET_KEY": "x", "DB_CONN_MAX_AGE": "soon"},
            "DB_CONN_MAX_AGE='soon' is not an integer",
        ),
    ],
)
def test_bad_configuration_stops_with_a_message(tmp_path, env, message):
    result = _load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_embedded_defaults_and_generated_secret_kept(tmp_path):
    first = _load_settings(tmp_path, DEBUG="1")
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["django.db.backends.sqlite3", "UTC", "True"]
    secret = (tmp_path / "secret_key").read_text()
    assert len(secret) > 40
    assert _load_settings(tmp_path, DEBUG="yes").returncode == 0
    assert (tmp_path / "secret_key").read_text() == secret


def test_database_url_and_time_zone_are_read(tmp_path):
    result = _load_settings(
        tmp_path,
        SECRET_KEY="x",
        TIME_ZONE="America/Chicago",
        DATABASE_URL="postgres://u@127.0.0.1:5432/plant",
    )
    assert result.stdout.split() == ["django.db.backends.postgresql", "America/Chicago", "False"]


def test_a_redis_cache_url_gives_every_process_the_same_cache(tmp_path):
    """The throttle history lives in the cache: with MES_CACHE_URL, one process's writes are
    what the next process reads (with the default, each process has its own)."""
    require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    key = f"shared-{uuid.uuid4().hex}"

    def run(code: str, **env) -> str:
        result = _run_with_settings(tmp_path, code, SECRET_KEY="x", **env)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    put = f"from django.core.cache import cache; cache.set({key!r}, 'hello', 60); print('ok')"
    get = f"from django.core.cache import cache; print(cache.get({key!r}, 'missing'))"
    redis = "redis://127.0.0.1:6379/14"
    assert run(put, MES_CACHE_URL=redis) == "ok"
    assert run(get, MES_CACHE_URL=redis) == "hello"
    assert run(get) == "missing"
    run(
        f"from django.core.cache import cache; cache.delete({key!r}); print('ok')",
        MES_CACHE_URL=redis,
    )
