"""docker-compose.yml, checked without Docker: its processes are the Procfile's, every queue a
task can be sent to has its worker, one beat, the migrations before anything else of the MES,
the image's non-root user with somewhere to write, healthchecks, pinned images, every
variable documented, the settings accepting its environment, and a Prometheus that scrapes
web's /metrics with the token. Where ``docker compose`` exists, it validates the file too."""

from __future__ import annotations

import inspect
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path, PurePosixPath

import yaml
from django.urls import reverse

from shopfloor.plc.demo import configure_demo_connections
from shopfloor.plc.simulator import DEMO_SCENARIO, load_scenario

from .test_configuration import compose_variables, documented, yaml_strings
from .test_image import dockerignore_rules, in_context

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"
# Procfile.demo's simulators and the services of the demo profile that run them.
DEMO_PROCESSES = {"erp": "erp-simulator", "plcs": "plc-simulator"}
MIGRATE = ["python", "manage.py", "migrate", "--noinput"]
# Queues that several services consume on purpose (none so far).
SHARED_QUEUES: set[str] = set()
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}")


# --- Reading the files -----------------------------------------------------------------------


@cache
def compose() -> dict:
    """The compose file, read once (treat it as read-only)."""
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def mes_image() -> str:
    built = [s for s in services().values() if "build" in s]
    assert len(built) == 1, "the MES image is built by exactly one service"
    return built[0]["image"]


def app_services() -> dict[str, dict]:
    """The services that run the MES image."""
    return {name: s for name, s in services().items() if s.get("image") == mes_image()}


def argv(service: dict) -> list[str] | None:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else command


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (d or {}).get("condition", "service_started") for name, d in deps.items()}


def mounts(service: dict) -> dict[str, str]:
    """Container path: what is mounted there (a volume name, a host path or ``tmpfs``)."""
    found: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found[volume["target"]] = volume.get("source") or volume["type"]
        else:
            source, target = volume.split(":")[:2]
            found[target] = source
    tmpfs = service.get("tmpfs", [])
    for path in [tmpfs] if isinstance(tmpfs, str) else tmpfs:
        found[path.split(":")[0]] = "tmpfs"
    return found


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} (the forms this file uses)."""

    def substitute(match: re.Match) -> str:
        name, colon, kind, word = match.groups()
        present = variables.get(name)
        unset = present is None or (colon and present == "")
        if kind == "?" and unset:
            raise KeyError(f"{name} is required: {word}")
        return word if kind == "-" and unset else (present or "")

    return VARIABLE.sub(substitute, value).replace("$$", "$")


def required_variables() -> set[str]:
    """The variables written ${NAME:?error}: compose refuses to start without them."""
    return {
        match.group(1)
        for text in yaml_strings(compose())
        for match in VARIABLE.finditer(text)
        if match.group(3) == "?"
    }


def procfile(path: Path) -> dict[str, list[str]]:
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = shlex.split(command)
    return entries


def runtime_stage() -> str:
    return (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]


def image_env() -> dict[str, str]:
    """The ENV of the Dockerfile's runtime stage."""
    text = runtime_stage().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(item.split("=", 1) for item in shlex.split(line[4:]))
    return env


def image_cmd() -> list[str]:
    return json.loads(re.search(r"^CMD (\[.*\])$", runtime_stage(), re.M).group(1))


def image_user() -> str:
    return re.findall(r"^USER (\S+)$", runtime_stage(), re.M)[-1]


def expand_shell(word: str, env: dict[str, str]) -> str:
    """The Procfile's ${NAME:-default}, as the shell that runs it expands it."""
    return re.sub(
        r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), word
    ).replace("$$", "$")


def celery_command(words: list[str] | None) -> str | None:
    """``worker`` or ``beat`` for ``celery -A mes <command> ...``."""
    if words and words[:3] == ["celery", "-A", "mes"]:
        return words[3]
    return None


def option(words: list[str], *names: str) -> str | None:
    for i, word in enumerate(words):
        if word in names:
            return words[i + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def plc_groups() -> list[str]:
    raw = compose()["x-mes-env"].get("MES_PLC_GROUPS", "default")
    return [group.strip() for group in raw.split(",") if group.strip()]


def process_environment(tmp_path: Path, service: dict | None = None) -> dict[str, str]:
    """What a compose service of the MES runs with (by default the shared x-mes-env): the
    image's ENV, its paths moved under tmp_path, then the service's environment with only
    the required variables set."""
    variables = dict.fromkeys(required_variables(), "compose-check")
    image = image_env()
    env = {key: str(tmp_path / key.lower()) for key in image if key.endswith(("DIR", "ROOT"))}
    env.update({k: v for k, v in image.items() if k not in env and k != "PATH"})
    declared = environment(service) if service else compose()["x-mes-env"]
    for key, value in declared.items():
        if not (key.endswith(("DIR", "ROOT")) and key in env):
            env[key] = interpolate(str(value), variables)
    return {"PATH": os.environ["PATH"], **env}


ROUTES = """
import json, django
django.setup()
from django.conf import settings
from mes.celery import app
app.loader.import_default_modules()

def queue(name, args):
    chosen = app.amqp.router.route({}, name, args, {})["queue"]
    return getattr(chosen, "name", chosen)

groups = [[g] for g in settings.MES_PLC_GROUPS]
print(json.dumps({
    "declared": [q.name for q in settings.CELERY_TASK_QUEUES],
    "beat": sorted({e.get("options", {}).get("queue") or queue(e["task"], e.get("args", ()))
                    for e in settings.CELERY_BEAT_SCHEDULE.values()}),
    "tasks": sorted({queue(name, args) for name in app.tasks if not name.startswith("celery.")
                     for args in groups}),
}))
"""


def queues_sent_to(tmp_path: Path) -> dict[str, list[str]]:
    """The queues the settings declare, beat sends to and the tasks are routed to, in a
    process with the compose file's environment (its MES_PLC_GROUPS, its default queue)."""
    out = subprocess.run(
        [sys.executable, "-c", ROUTES],
        cwd=ROOT,
        env=process_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- The tests -------------------------------------------------------------------------------


def test_the_file_is_a_compose_specification_file():
    document = compose()
    assert "version" not in document, "the version key is obsolete in the Compose Specification"
    known = {"name", "services", "networks", "volumes", "secrets", "configs"}
    assert {k for k in document if not k.startswith("x-")} <= known
    for name, service in document["services"].items():
        for source in mounts(service).values():
            if not source.startswith((".", "/")) and source != "tmpfs":
                assert source in document["volumes"], f"{name}: volume {source} not declared"
        for secret in service.get("secrets", []):
            source = secret["source"] if isinstance(secret, dict) else secret
            assert source in document["secrets"], f"{name}: secret {source} not declared"
        for other in depends_on(service):
            assert other in document["services"], f"{name} waits for unknown {other}"


def test_images_are_pinned_and_the_mes_image_is_built_once():
    built = {name: s for name, s in services().items() if "build" in s}
    assert list(built) == ["migrate"], "one service builds the image, the others run it"
    context = built["migrate"]["build"]
    assert (context if isinstance(context, str) else context["context"]) == "."
    assert re.fullmatch(r"\$\{MES_IMAGE:-[\w./-]+:[\w.-]+\}", mes_image())
    assert not mes_image().endswith(":latest}")
    for name, service in services().items():
        if name in app_services():
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_every_queue_a_task_can_be_sent_to_is_consumed_by_exactly_one_worker(tmp_path):
    sent = queues_sent_to(tmp_path)
    assert f"plc.{plc_groups()[0]}" in sent["declared"]
    consumers: dict[str, list[str]] = {}
    for name, service in app_services().items():
        words = argv(service)
        if celery_command(words) != "worker":
            continue
        queues = option(words, "-Q", "--queues")
        assert queues, f"{name} takes every queue (no -Q): urgent work would wait behind slow"
        for queue in queues.split(","):
            consumers.setdefault(queue, []).append(name)
    needed = set(sent["declared"]) | set(sent["beat"]) | set(sent["tasks"])
    for queue in sorted(needed):
        taken = consumers.get(queue, [])
        assert taken, f"nothing consumes {queue}"
        assert len(taken) == 1 or queue in SHARED_QUEUES, f"{queue} is consumed by {taken}"
    idle = set(consumers) - needed
    assert not idle, f"workers wait on queues nothing is sent to: {idle}"


def test_exactly_one_beat():
    beats = [
        name
        for name, service in app_services().items()
        if celery_command(argv(service)) == "beat" or {"-B", "--beat"} & set(argv(service) or [])
    ]
    assert beats == ["beat"]
    beat = services()["beat"]
    assert beat.get("deploy", {}).get("replicas", 1) == 1 and "scale" not in beat
    assert not beat.get("profiles")


def test_the_migrations_run_before_anything_else_of_the_mes():
    migrate = services()["migrate"]
    assert argv(migrate) == MIGRATE
    assert migrate["restart"] == "no", "a one-shot that restarts never completes"
    assert depends_on(migrate) == {"postgres": "service_healthy"}
    for name, service in app_services().items():
        if name == "migrate":
            continue
        deps = depends_on(service)
        assert deps.get("migrate") == "service_completed_successfully", name
        if "network_mode" not in service:  # else it waits for the service it shares one with
            assert deps.get("postgres") == deps.get("redis") == "service_healthy", name


def test_the_processes_are_the_procfiles():
    image = image_env()
    # web: the image's command, which is the Procfile's.
    assert procfile(ROOT / "Procfile")["web"] == image_cmd()
    assert argv(services()["web"]) is None, "web runs the image's command"
    expected: dict[str, list[str]] = {}
    for name, words in procfile(ROOT / "Procfile").items():
        if name == "web":
            continue
        words = [expand_shell(word, image) for word in words]
        if name == "plc":  # a worker per poll group, on its queue
            for group in plc_groups():
                expected[f"plc-{group}"] = [
                    f"plc.{group}" if word == "plc.default" else word for word in words
                ]
        else:
            expected[name] = words
    demo = procfile(ROOT / "Procfile.demo")
    expected.update({service: demo[name] for name, service in DEMO_PROCESSES.items()})
    for name, words in expected.items():
        assert argv(services()[name]) == words, f"{name} does not run what the Procfile says"
    one_shots = {name for name, s in app_services().items() if s.get("restart") == "no"}
    assert one_shots == {"migrate", "demo-seed"}
    assert set(app_services()) == set(expected) | one_shots | {"web"}, "a process not in Procfile"


def test_the_mes_runs_as_the_images_user_and_can_write_where_it_must():
    user = image_user()
    assert user not in {"root", "0"} and not user.startswith("0:")
    var_dir = image_env()["MES_VAR_DIR"]
    assert re.search(rf"chown -R {user}:{user} .*{re.escape(var_dir)}\b", runtime_stage())
    for name, service in app_services().items():
        assert service.get("user") in (None, user, "10001"), f"{name} runs as {service['user']}"
        assert not service.get("privileged"), name
    beat = services()["beat"]
    schedule = PurePosixPath(option(argv(beat), "--schedule"))
    assert str(schedule.parent) in mounts(beat), "beat's schedule file needs a volume"
    web = services()["web"]
    metrics_dir = environment(web)["PROMETHEUS_MULTIPROC_DIR"]
    assert mounts(web).get(metrics_dir) == "tmpfs", "gunicorn's metric files: one tmpfs per web"


def test_every_long_running_service_has_a_healthcheck():
    for name, service in services().items():
        if service.get("restart") == "no":
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check["test"][0] in ("CMD", "CMD-SHELL"), (
            f"{name} has no healthcheck"
        )
    test = {
        name: " ".join(s["healthcheck"]["test"])
        for name, s in services().items()
        if "healthcheck" in s
    }
    assert "pg_isready" in test["postgres"] and "redis-cli ping" in test["redis"]
    # web: with the image's Python (no curl), on the port gunicorn listens on.
    web = services()["web"]
    port = web["ports"][0].rsplit(":", 1)[1]
    assert re.search(rf"python -c .*urllib.*http://localhost:{port}/(readyz|healthz)'", test["web"])
    assert reverse("readyz") == "/readyz"
    assert "localhost" in environment(web)["ALLOWED_HOSTS"].split(",")
    # Celery workers: answered by the node the service starts (--hostname <name>@%h).
    for name, service in app_services().items():
        if celery_command(argv(service)) == "worker":
            node = option(argv(service), "--hostname").replace("%h", "$$HOSTNAME")
            assert f"inspect ping --destination {node} " in test[name], name
    schedule = option(argv(services()["beat"]), "--schedule")
    assert f"'{schedule}*'" in test["beat"]


def test_every_variable_is_documented_and_in_the_example():
    names = documented()
    read = compose_variables()
    assert not read - names, f"compose reads undocumented {sorted(read - names)}"
    for name, service in app_services().items():
        unknown = set(environment(service)) - names
        assert not unknown, f"{name} sets undocumented {sorted(unknown)}"
    example = dict(re.findall(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M))
    assert set(example) == read, "deploy/compose.env.example lists what the compose file reads"
    uncommented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=$", ENV_EXAMPLE.read_text(), re.M))
    assert required_variables() == uncommented, "the required ones, left empty to be filled in"


def test_the_settings_accept_the_compose_environment(tmp_path):
    """Only the required variables set: every default the file gives passes the settings'
    checks (a bad one stops every process at start)."""
    environments = {json.dumps(environment(s), sort_keys=True): s for s in app_services().values()}
    assert len(environments) == 2, "web's (metrics folder, processes) and everyone else's"
    for service in environments.values():
        env = process_environment(tmp_path, service)
        assert env["DEBUG"] == "0" and env["DATABASE_URL"].startswith("postgres://")
        out = subprocess.run(
            [sys.executable, "-c", "import django; django.setup(); print('ok')"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.stdout.strip() == "ok", out.stderr[-3000:]


def test_prometheus_scrapes_the_web_services_metrics_with_the_token():
    prometheus = services()["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    config_path = option(prometheus["command"], "--config.file")
    host_files = {target: source for target, source in mounts(prometheus).items()}
    config = yaml.safe_load((ROOT / host_files[config_path]).read_text())
    web = services()["web"]
    port = web["ports"][0].rsplit(":", 1)[1]
    secret = prometheus["secrets"][0]
    assert compose()["secrets"][secret["source"]] == {"environment": "MES_METRICS_TOKEN"}
    assert secret["mode"] & 0o004, "Prometheus runs as nobody: the token file must be readable"
    token_file = f"/run/secrets/{secret.get('target', secret['source'])}"
    jobs = [
        job
        for job in config["scrape_configs"]
        if any(f"web:{port}" in c["targets"] for c in job.get("static_configs", []))
    ]
    assert len(jobs) == 1, "one job scrapes web"
    job = jobs[0]
    assert job.get("metrics_path", "/metrics") == reverse("metrics")
    assert job["authorization"] == {"type": "Bearer", "credentials_file": token_file}
    assert "web" in environment(web)["ALLOWED_HOSTS"].split(","), "the scrape's Host header"
    assert not re.search(r"^\s*(credentials|bearer_token|password):", yaml.dump(config), re.M)
    # The alerting rules name metrics /metrics exports.
    exported = set(re.findall(r'"(mes_[a-z_]+)"', (ROOT / "mes" / "metrics.py").read_text()))
    assert exported
    for rule_file in config.get("rule_files", []):
        rules = yaml.safe_load((ROOT / host_files[rule_file]).read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                for metric in re.findall(r"\b(mes_[a-z_]+)", rule["expr"]):
                    base = re.sub(r"_(total|bucket|sum|count|created)$", "", metric)
                    assert metric in exported or base in exported, f"{rule['alert']}: {metric}"


def test_the_demo_profile_runs_the_simulators_beside_the_workers_that_reach_them():
    core = {name for name, s in services().items() if not s.get("profiles")}
    assert {"postgres", "redis", "migrate", "web", "beat"} <= core
    demo = {name for name, s in services().items() if "demo" in s.get("profiles", [])}
    assert demo == {"demo-seed", *DEMO_PROCESSES.values()}
    # The simulators listen on loopback only: each shares the network namespace of the
    # worker that connects to it (its queue), and the allow-list must name 127.0.0.1.
    scenario = load_scenario(DEMO_SCENARIO)
    assert ipaddress.ip_address(scenario.host).is_loopback
    group = inspect.signature(configure_demo_connections).parameters["group"].default
    consumers = {
        queue: name
        for name, s in app_services().items()
        if celery_command(argv(s)) == "worker"
        for queue in option(argv(s), "-Q").split(",")
    }
    assert services()["plc-simulator"]["network_mode"] == f"service:{consumers[f'plc.{group}']}"
    assert services()["erp-simulator"]["network_mode"] == f"service:{consumers['celery.erp']}"
    # The image holds what the simulators read.
    scenario_file = str(DEMO_SCENARIO.relative_to(ROOT))
    assert in_context(scenario_file, dockerignore_rules()), f"{scenario_file} not in the image"


def test_docker_compose_accepts_the_file(tmp_path):
    """Only where the Docker CLI has its compose plugin (no daemon needed); elsewhere the
    structural tests above stand in for it."""
    try:
        subprocess.run(["docker", "compose", "version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return
    profiles = sorted({p for s in services().values() for p in s.get("profiles", [])})
    env = {**os.environ, **dict.fromkeys(required_variables(), "compose-check")}
    empty = tmp_path / "empty.env"  # not a developer's own .env
    empty.write_text("")
    compose_cli = ["docker", "compose", f"--env-file={empty}"]
    out = subprocess.run(
        [*compose_cli, *(f"--profile={p}" for p in profiles), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    # A required variable left empty is refused.
    del env["SECRET_KEY"]
    out = subprocess.run(
        [*compose_cli, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode != 0 and "SECRET_KEY" in out.stderr
