"""The plant as production runs it, for the benches that need all of it: the top-level
``Procfile``'s processes on this run's own queues, each a child process that dies with the
bench, a block of free loopback ports for simulated PLCs, the broker a bench uses by default
and the clean-up of its queues afterwards."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REDIS = ("127.0.0.1", 6379)


def port_open(address: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(address) == 0


def default_broker(db: int) -> str:
    """Redis on 127.0.0.1:6379 (database ``db``) when it answers, else the embedded
    filesystem broker."""
    return f"redis://{REDIS[0]}:{REDIS[1]}/{db}" if port_open(REDIS) else "filesystem://"


def free_port_range(count: int) -> int:
    """A first port of ``count`` consecutive free loopback ports, below the usual ephemeral
    range (32768-60999 on Linux), where busy clients do not take them meanwhile."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32768 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise SystemExit(f"no {count} consecutive free ports on 127.0.0.1")


# --- Child processes ------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the bench dies, however it dies."""
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Children:
    """The processes a bench starts, each in its own process group, logging to
    ``<logs>/<name>.log``; :meth:`stop` kills every group for sure."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.procs = logs, {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], *, piped: bool = False) -> subprocess.Popen:
        """Start ``args``; ``piped``: with stdin and stdout as text pipes to the bench."""
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=os.environ.copy(),
            stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
            stdout=subprocess.PIPE if piped else log,
            stderr=log,
            text=piped,
            bufsize=1 if piped else -1,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.procs[name] = proc
        return proc

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited ({proc.returncode}); see {self.logs}/{name}.log")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to every group, SIGKILL to what still runs ``grace`` seconds later."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            # The group too: prefork children and beat outlive a parent killed alone.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for(what: str, condition, timeout: float, children: Children, every: float = 0.02):
    """``condition()``'s first true result, checking meanwhile that every child still runs."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        children.check()
        time.sleep(every)


def procfile_processes(queues, group: str, *, web: bool = False) -> dict[str, str]:
    """The top-level Procfile's worker and beat lines (with ``web``, its web line too), with
    its queue names turned into this run's (``mes.queues.Queues`` with the default names ->
    ``queues``)."""
    from mes.queues import Queues

    standard = Queues("celery")
    rename = {
        standard.default: queues.default,
        standard.erp: queues.erp,
        standard.schedule: queues.schedule,
        standard.booking: queues.booking,
        Queues.plc("default"): Queues.plc(group),
    }

    def local(match: re.Match) -> str:
        names = match.group(1).split(",")
        unknown = [n for n in names if n not in rename]
        if unknown:
            raise SystemExit(f"Procfile: queue {', '.join(unknown)} is not one the bench knows")
        return "-Q " + ",".join(rename[n] for n in names)

    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if not command.strip() or line.lstrip().startswith("#"):
            continue
        if name.strip() == "web" and not web:
            continue
        name, command = name.strip(), re.sub(r"-Q (\S+)", local, command.strip())
        if " worker " in f"{command} ":
            command += f" --hostname bench-{name}@%h"  # the last one counts
        processes[name] = f"exec {command}"
    if "beat" not in processes or not any("-Q" in c for c in processes.values()):
        raise SystemExit("Procfile: expected a beat line and worker lines with -Q")
    if web and "web" not in processes:
        raise SystemExit("Procfile: expected a web line")
    return processes


def delete_queues(broker: str, names: list[str]) -> None:
    """Remove a run's queues from the broker: their messages (beat's last ticks) and, on
    Redis, kombu's bindings. The names must be the run's own (``MES_CELERY_QUEUE`` and poll
    groups of its own)."""
    from django.conf import settings

    if broker.startswith("redis://"):
        import redis

        client = redis.Redis.from_url(broker)
        for name in names:
            keys = [*client.scan_iter(match=f"{name}*"), *client.scan_iter(f"_kombu.*.{name}")]
            if keys:
                client.delete(*keys)
    elif broker.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        for name in names:
            for message in folder.glob(f"*.{name}.msg"):
                message.unlink(missing_ok=True)
