"""Configuration from the environment fails loudly on bad values."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .support import port_open, require, run_django

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://u@127.0.0.1:5432/plant"  # settings only: nothing connects to it


def _run_with_settings(tmp_path, code: str, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "SECRET_KEY",
            "DEBUG",
            "DATABASE_URL",
            "TIME_ZONE",
            "MES_CACHE_URL",
            "MES_OUTBOUND_ALLOWED_HOSTS",
            "MES_FIELD_ENCRYPTION_KEY",
        }
        and not k.startswith(("DB_CONN_MAX_AGE", "MES_DB_POOL"))
    }
    return run_django(code, {**base, "MES_VAR_DIR": str(tmp_path), **env})


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
        ({"SECRET_KEY": "x", "DATABASE_URL": PG, "MES_DB_POOL": "maybe"}, "is not a boolean"),
        (
            {"SECRET_KEY": "x", "DATABASE_URL": PG, "MES_DB_POOL_MAX_SIZE": "0"},
            "MES_DB_POOL_MAX_SIZE=0 must be at least 1",
        ),
        (
            {"SECRET_KEY": "x", "DATABASE_URL": PG, "MES_DB_POOL_TIMEOUT": "0"},
            "MES_DB_POOL_TIMEOUT=0 must be at least 1",
        ),
        (
            {
                "SECRET_KEY": "x",
                "DATABASE_URL": PG,
                "MES_DB_POOL_MIN_SIZE": "5",
                "MES_DB_POOL_MAX_SIZE": "2",
            },
            "MES_DB_POOL_MIN_SIZE=5 is more than MES_DB_POOL_MAX_SIZE=2",
        ),
        (
            {"SECRET_KEY": "x", "DATABASE_URL": PG, "DB_CONN_MAX_AGE": "60"},
            "DB_CONN_MAX_AGE keeps connections outside the pool",
        ),
        (
            {"SECRET_KEY": "x", "MES_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1,10.0.0.1/8"},
            "MES_OUTBOUND_ALLOWED_HOSTS: '10.0.0.1/8' is not an IP address, a CIDR network",
        ),
        (
            {"SECRET_KEY": "x", "MES_FIELD_ENCRYPTION_KEY": "too-short"},
            "MES_FIELD_ENCRYPTION_KEY: key 1 has 9 characters; give at least 32",
        ),
        ({"SECRET_KEY": "x", "MES_LOG_FORMAT": "xml"}, "MES_LOG_FORMAT='xml': use json or plain"),
        ({"SECRET_KEY": "x", "LOG_LEVEL": "loud"}, "LOG_LEVEL='LOUD'"),
        ({"SECRET_KEY": "x", "MES_BEHIND_TLS": "perhaps"}, "MES_BEHIND_TLS='perhaps'"),
        ({"SECRET_KEY": "x", "MES_API_THROTTLE_RATE": "lots"}, "MES_API_THROTTLE_RATE='lots'"),
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
        DATABASE_URL=PG,
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


def _database(tmp_path, **env) -> dict:
    """The default database's CONN_MAX_AGE, CONN_HEALTH_CHECKS and OPTIONS, and the sizes
    of the pool Django builds from them (None without one); nothing connects."""
    code = (
        "import json; from django.conf import settings; from django.db import connection\n"
        "db = settings.DATABASES['default']; pool = getattr(connection, 'pool', None)\n"
        "print(json.dumps({'conn_max_age': db['CONN_MAX_AGE'],"
        " 'health_checks': db['CONN_HEALTH_CHECKS'], 'options': db['OPTIONS'],"
        " 'pool': pool and [pool.min_size, pool.max_size, pool.timeout]}))"
    )
    result = _run_with_settings(tmp_path, code, SECRET_KEY="x", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_postgresql_pools_its_connections_by_default(tmp_path):
    """One bounded pool per process: Django's psycopg pool (OPTIONS["pool"]) with
    CONN_MAX_AGE 0, as Django requires, and health checks on what the pool hands out."""
    db = _database(tmp_path, DATABASE_URL=PG)
    assert db["options"]["pool"] == {"min_size": 1, "max_size": 4, "timeout": 10.0}
    assert db["pool"] == [1, 4, 10.0]
    assert db["conn_max_age"] == 0
    assert db["health_checks"] is True


def test_the_pool_is_sized_by_the_environment(tmp_path):
    db = _database(
        tmp_path,
        DATABASE_URL=PG,
        MES_DB_POOL_MIN_SIZE="2",
        MES_DB_POOL_MAX_SIZE="12",
        MES_DB_POOL_TIMEOUT="3",
        DB_CONN_MAX_AGE="0",  # says the same as the pool: accepted
    )
    assert db["options"]["pool"] == {"min_size": 2, "max_size": 12, "timeout": 3.0}
    assert db["pool"] == [2, 12, 3.0]
    assert db["conn_max_age"] == 0


@pytest.mark.parametrize(
    "env,conn_max_age",
    [({"MES_DB_POOL": "0"}, 60), ({"MES_DB_POOL": "off", "DB_CONN_MAX_AGE": "30"}, 30)],
)
def test_without_the_pool_connections_persist_as_before(tmp_path, env, conn_max_age):
    """MES_DB_POOL=0 (behind PgBouncer, say): one connection per thread, kept for
    DB_CONN_MAX_AGE seconds."""
    db = _database(tmp_path, DATABASE_URL=PG, **env)
    assert "pool" not in db["options"]
    assert db["pool"] is None
    assert db["conn_max_age"] == conn_max_age


def test_sqlite_has_no_pool(tmp_path):
    db = _database(tmp_path, MES_DB_POOL_MAX_SIZE="8")
    assert "pool" not in db["options"]
    assert db["pool"] is None
    assert db["conn_max_age"] == 0


def test_outbound_targets_default_to_none_and_to_loopback_for_the_demo(tmp_path):
    code = "from django.conf import settings; print(settings.MES_OUTBOUND_ALLOWED_HOSTS)"
    production = _run_with_settings(tmp_path, code, SECRET_KEY="x")
    demo = _run_with_settings(tmp_path, code, DEBUG="1")
    chosen = _run_with_settings(
        tmp_path, code, DEBUG="1", MES_OUTBOUND_ALLOWED_HOSTS=" 10.1.0.0/16, erp.plant.local"
    )

    assert production.stdout.strip() == "[]", production.stderr
    assert demo.stdout.strip() == "['127.0.0.0/8', '::1', 'localhost']", demo.stderr
    assert chosen.stdout.strip() == "['10.1.0.0/16', 'erp.plant.local']", chosen.stderr


PRODUCTION = {
    "SECRET_KEY": "a-long-random-production-secret-" + "k" * 40,
    "ALLOWED_HOSTS": "mes.plant.example",
    "MES_BEHIND_TLS": "1",
    "MES_HSTS_INCLUDE_SUBDOMAINS": "1",
    "MES_HSTS_PRELOAD": "1",
}


def test_production_settings_pass_the_deployment_checks(tmp_path):
    code = (
        "from django.core.management import call_command\n"
        "call_command('check', deploy=True, fail_level='WARNING')\n"
        "print('clean')"
    )
    result = _run_with_settings(tmp_path, code, **PRODUCTION)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "clean" in result.stdout


def test_behind_tls_plain_http_is_redirected_and_https_is_pinned(tmp_path):
    code = (
        "import json\n"
        "from django.test import Client\n"
        "c = Client(HTTP_HOST='mes.plant.example')\n"
        "plain = c.get('/accounts/login/')\n"
        "probe = c.get('/healthz')\n"
        "tls = c.get('/accounts/login/', HTTP_X_FORWARDED_PROTO='https')\n"
        "print(json.dumps({'plain': [plain.status_code, plain.get('Location', '')],"
        " 'probe': probe.status_code, 'tls': tls.status_code,"
        " 'hsts': tls.get('Strict-Transport-Security', ''),"
        " 'csp': tls.get('Content-Security-Policy', ''),"
        " 'cookie_secure': bool(tls.cookies['csrftoken']['secure'])}))"
    )
    result = _run_with_settings(tmp_path, code, **PRODUCTION)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain"] == [301, "https://mes.plant.example/accounts/login/"]
    assert seen["probe"] == 200  # health probes come from inside, over plain HTTP
    assert seen["tls"] == 200
    assert seen["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert "script-src 'self'" in seen["csp"] and "'unsafe-inline'" not in seen["csp"]
    assert seen["cookie_secure"] is True


def test_the_demos_env_file_is_read_and_the_environment_wins(tmp_path):
    """`make demo` writes var/.env (DEBUG=1): a command started later in another shell has
    the demo's settings without exporting anything; what the environment sets wins."""
    (tmp_path / ".env").write_text("# the demo\nDEBUG=1\nTIME_ZONE=Europe/Vienna\n")
    code = "from django.conf import settings; print(settings.DEBUG, settings.TIME_ZONE)"
    env_file = str(tmp_path / ".env")

    demo = _run_with_settings(tmp_path, code, MES_ENV_FILE=env_file)
    overridden = _run_with_settings(
        tmp_path, code, MES_ENV_FILE=env_file, TIME_ZONE="Europe/Berlin"
    )
    no_file = _run_with_settings(tmp_path, code, MES_ENV_FILE="")

    assert demo.stdout.split() == ["True", "Europe/Vienna"], demo.stderr[-2000:]
    assert overridden.stdout.split() == ["True", "Europe/Berlin"], overridden.stderr[-2000:]
    # MES_ENV_FILE empty (as in the tests): no file, so DEBUG is off and SECRET_KEY missing.
    assert no_file.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in no_file.stderr


def test_without_mes_env_file_the_file_under_mes_var_dir_is_read(tmp_path):
    (tmp_path / ".env").write_text("DEBUG=1\n")
    code = "from django.conf import settings; print(settings.DEBUG)"
    env = {k: v for k, v in os.environ.items() if k != "MES_ENV_FILE"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        env={
            **{k: v for k, v in env.items() if k not in {"SECRET_KEY", "DEBUG"}},
            "MES_VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "mes.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "True", result.stderr[-2000:]
