"""The production image's commands, run outside the image: collectstatic with hashed,
compressed files, and gunicorn serving mes.wsgi with whitenoise."""

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .support import free_port

ROOT = Path(__file__).resolve().parent.parent


def _get(url: str) -> tuple[int, dict, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, dict(response.headers), response.read().decode()


def test_collectstatic_and_gunicorn_serve_the_app(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"MES_PLAIN_STATIC", "DEBUG"}}
    env.update(
        SECRET_KEY="deploy-test",
        STATIC_ROOT=str(tmp_path / "static"),
        MES_VAR_DIR=str(tmp_path / "var"),
        DEBUG="0",
        SECURE_COOKIES="0",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        MES_METRICS_TOKEN="",
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (tmp_path / "static" / "staticfiles.json").exists()

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "mes.wsgi:application",
            "-c",
            "python:mes.gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, body = _get(f"{base}/accounts/login/")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert status == 200 and "Sign in" in body
        css = re.search(r'href="(/static/css/mes\.[0-9a-f]{12}\.css)"', body)
        assert css, "stylesheet is not served under its hashed name"
        status, headers, text = _get(base + css.group(1))
        assert status == 200 and ":root" in text
        assert "max-age=315360000" in headers.get("Cache-Control", "")

        # Metrics of both workers are summed (prometheus-client's multiprocess mode): ten
        # health checks over fresh connections, spread by the kernel over the workers.
        for _ in range(10):
            assert _get(f"{base}/healthz")[0] == 200
        _, _, metrics = _get(f"{base}/metrics")
        count = re.search(
            r'^mes_http_request_duration_seconds_count\{[^}]*route="healthz"[^}]*\} ([0-9.]+)$',
            metrics,
            re.M,
        )
        assert count and float(count.group(1)) == 10.0, metrics[:2000]
        assert len(list((tmp_path / "metrics").glob("histogram_*.db"))) >= 1
        # This database was never migrated: the plant's figures are left out, not a 500.
        assert re.search(r"^mes_database_up 0\.0$", metrics, re.M)
    finally:
        server.terminate()
        server.wait(timeout=10)
