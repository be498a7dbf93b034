"""Every environment variable the product reads is documented in docs/configuration.md: those
the code reads and those docker-compose.yml reads (``${NAME}``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
READS = re.compile(
    r"""(?:env_(?:int|bool|list)|os\.environ\.get|os\.getenv|os\.environ\.setdefault)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
)
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
# ${NAME}, ${NAME:-default}, ${NAME:?error} or $NAME; $$ is a literal dollar sign.
COMPOSE_READS = re.compile(
    r"(?<!\$)(?:\$\$)*\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))"
)


def variables_read() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in ("mes", "erp_sync", "shopfloor"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for match in READS.finditer(path.read_text()):
                name = match.group(1) or match.group(2)
                found.setdefault(name, str(path.relative_to(ROOT)))
    return {k: v for k, v in found.items() if k not in NOT_SETTINGS}


def yaml_strings(node) -> Iterator[str]:
    """Every string in a loaded YAML document, keys and values."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from yaml_strings(key)
            yield from yaml_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from yaml_strings(item)
    elif isinstance(node, str):
        yield node


def compose_variables() -> set[str]:
    """The variables docker-compose.yml interpolates (from the shell or .env): in its keys and
    values, not in its comments."""
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {a or b for text in yaml_strings(document) for a, b in COMPOSE_READS.findall(text)}


def documented() -> set[str]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    return names


def test_every_variable_the_code_reads_is_documented():
    read = variables_read()
    assert len(read) > 40  # the scan finds what settings read
    missing = {name: where for name, where in read.items() if name not in documented()}
    assert not missing, f"read but not in docs/configuration.md: {missing}"


def test_the_documentation_names_no_variable_the_code_does_not_read():
    stale = documented() - set(variables_read()) - compose_variables()
    assert not stale, (
        f"documented but read by neither the code nor the compose file: {sorted(stale)}"
    )
