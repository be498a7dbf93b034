"""The commands the README and docs/ show work as written, tried as a new user would: `make
demo` runs (for real: honcho, gunicorn, the workers, the simulated PLCs and ERP), and in a
second shell, with nothing exported, every ```sh block runs to success (an HTTP error fails
`curl`), every server it shows starts and listens, and every `.venv/bin/...` command
written inline in the text runs too. A block is left out only when it is run elsewhere
(listed below with where).

The one difference from a new user's shell: `MES_VAR_DIR` points `make demo` and the
commands at a temporary directory, so a developer's own demo data stays untouched. The
commands run in a directory that mirrors the repository (symbolic links), so the files
they write (a generated client, a schema) land there."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .support import require

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEMO_PORTS = [8000, 8089, *range(15020, 15028)]

# Blocks run elsewhere: what runs them.
ELSEWHERE = {
    "make demo": "this test runs it first",
    "make test": "CI (.ci/run), which runs this test",
    "DATABASE_URL=postgres://postgres@127.0.0.1:5432/mes": "CI (.ci/run) on PostgreSQL",
}
# Pages whose commands run elsewhere.
PAGES_ELSEWHERE = {
    "docs/containers.md": "Docker's: CI runs `docker compose config` where Docker is, and "
    "tests/test_compose.py checks the compose file against the Procfile, the queues and the docs",
}
# Servers a block starts: the port that must listen (the rest of the block is its flags).
SERVERS = {
    "manage.py erp_simulator": r"--port (\d+)",
    "manage.py simulate_plcs": r"--base-port (\d+)",
}


def shown_blocks() -> list[tuple[str, str]]:
    """(where, script) of every ```sh block."""
    blocks = []
    for doc in DOCS:
        for match in re.finditer(r"^ *```sh\n(.*?)^ *```", doc.read_text(), re.S | re.M):
            script = "\n".join(line.strip() for line in match.group(1).splitlines())
            blocks.append((doc.relative_to(ROOT).as_posix(), script.strip()))
    return blocks


def inline_commands() -> list[tuple[str, str]]:
    """(where, command) of each complete `.venv/bin/...` command written in the text."""
    commands = []
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for span in re.findall(r"`([^`\n]+)`", text):
            if span.startswith(".venv/bin/") and " " in span and "..." not in span:
                commands.append((doc.relative_to(ROOT).as_posix(), span))
    return commands


def make_targets_shown() -> set[str]:
    targets = set()
    for doc in DOCS:
        targets |= set(re.findall(r"`make ([a-z-]+)", doc.read_text()))
        targets |= set(re.findall(r"^ *make ([a-z-]+)", doc.read_text(), re.M))
    return targets


def test_every_make_target_the_docs_name_exists():
    makefile = (ROOT / "Makefile").read_text()
    defined = set(re.findall(r"^([a-z-]+):", makefile, re.M))
    assert make_targets_shown() <= defined, make_targets_shown() - defined


def test_the_docs_use_one_form_for_commands():
    """`python manage.py ...` fails in a new shell (no django outside the virtualenv):
    commands are written `.venv/bin/python manage.py ...` everywhere."""
    bare = []
    for where, script in shown_blocks():
        for line in script.splitlines():
            if re.match(r"(python3?|celery|manage\.py|pip) ", line.lstrip()):
                bare.append(f"{where}: {line}")
    assert not bare, bare


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(predicate, seconds: float, what: str, process=None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process ended ({process.returncode})")
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {seconds} s")


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (honcho starts each of its processes in a session of its
    own, so signalling make's process group does not reach them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop(process: subprocess.Popen) -> None:
    """Ctrl-C, as a person would; whatever is still running a minute later is killed."""
    below = _descendants(process.pid)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(60)
    for pid in [process.pid, *below]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(10)


def _ready(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """A new user's shell after `make demo`: the environment a login shell has (nothing of
    the test run's settings), in a mirror of the repository."""
    if os.environ.get("DATABASE_URL"):
        pytest.skip("the demo runs on its embedded defaults: the run without DATABASE_URL tries it")
    installed = ROOT / ".venv" / ".installed"
    assert installed.exists(), "run `make install` first"
    assert installed.stat().st_mtime >= (ROOT / "pyproject.toml").stat().st_mtime, (
        "pyproject.toml changed since `make install`: run it again (make demo would reinstall)"
    )
    busy = [port for port in DEMO_PORTS if _listening(port)]
    require(not busy, f"the demo's ports are busy ({busy}): stop the running demo first")
    home = tmp_path_factory.mktemp("newuser")
    checkout = home / "mes"
    checkout.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {"var", ".git", "mes-api.json", "mes_api_client"}:
            (checkout / entry.name).symlink_to(entry)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "MES_VAR_DIR": str(home / "var"),
    }
    demo = subprocess.Popen(
        ["make", "demo"],
        cwd=checkout,
        env=env,
        stdout=(home / "demo.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: _ready("http://127.0.0.1:8000/readyz"), 240, "make demo", demo)
        _wait_for(lambda: all(_listening(p) for p in DEMO_PORTS), 60, "the simulators", demo)
        yield checkout, env
    finally:
        _stop(demo)


def _run_block(checkout: Path, env: dict, script: str) -> None:
    for command, port_flag in SERVERS.items():
        if command in script:
            assert script.count("\n") == 0, "a server's block holds that one command"
            port = int(re.search(port_flag, script).group(1))
            log = checkout.parent / f"server-{port}.log"
            server = subprocess.Popen(
                ["bash", "-c", script],
                cwd=checkout,
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                _wait_for(lambda port=port: _listening(port), 60, script, server)
            finally:
                _stop(server)
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
            return
    # An HTTP error status fails curl, as a person reading the answer would notice it.
    prelude = (
        'set -euo pipefail\ncurl() { command curl --silent --show-error --fail-with-body "$@"; }\n'
    )
    result = subprocess.run(
        ["bash", "-c", prelude + script],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{script}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def _elsewhere(where: str, script: str) -> str | None:
    if where in PAGES_ELSEWHERE:
        return PAGES_ELSEWHERE[where]
    return next((why for start, why in ELSEWHERE.items() if script.startswith(start)), None)


@pytest.mark.slow
def test_every_command_shown_works_in_a_second_shell_after_make_demo(shell):
    checkout, env = shell
    ran = []
    for where, script in shown_blocks():
        if _elsewhere(where, script):
            continue
        _run_block(checkout, env, script)
        ran.append(where)
    for where, command in inline_commands():
        if where in PAGES_ELSEWHERE:
            continue
        _run_block(checkout, env, command)
        ran.append(where)
    # The demo's API client and the generated one exist: the commands did what they say.
    assert (checkout / "mes_api_client").is_dir()
    assert len(ran) >= 10, ran


def test_the_blocks_left_out_are_the_ones_named():
    left_out = {
        script.splitlines()[0] for where, script in shown_blocks() if _elsewhere("", script)
    }
    assert left_out, "nothing left out: drop ELSEWHERE"
    for start in ELSEWHERE:
        assert any(line.startswith(start) for line in left_out), f"stale entry: {start}"
    pages = {where for where, _ in shown_blocks()}
    assert set(PAGES_ELSEWHERE) <= pages, set(PAGES_ELSEWHERE) - pages
