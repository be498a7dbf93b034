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
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
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
    finally:
        server.terminate()
        server.wait(timeout=10)
