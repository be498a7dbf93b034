"""Every environment variable the product reads is documented in docs/configuration.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READS = re.compile(
    r"""(?:env_(?:int|bool|list)|os\.environ\.get|os\.getenv|os\.environ\.setdefault)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
)
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}


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
    stale = documented() - set(variables_read())
    assert not stale, f"documented but never read: {sorted(stale)}"
