"""What the production image holds, checked without Docker: the build context that
.dockerignore lets in must contain everything the application reads at run time (derived
from pyproject.toml's packages and the settings' template, static and locale folders) and
nothing of the development tree; the Dockerfile's runtime stage copies that context."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if (ROOT / line).exists()]


def dockerignore_rules() -> list[tuple[bool, str]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, line[1:] if negated else line))
    return rules


def _matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern matches the path or one of its parent folders."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if pattern.startswith("**/"):
        tail = pattern[3:]
        return any(fnmatch.fnmatchcase(part, tail) for part in parts)
    return any(fnmatch.fnmatchcase(c, pattern) for c in candidates)


def in_context(path: str, rules) -> bool:
    included = True
    for negated, pattern in rules:
        if _matches(pattern, path):
            included = negated
    return included


def runtime_roots() -> set[str]:
    """Top-level entries the running application reads."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    roots = {p.rstrip("*") for p in packages}
    folders = [
        *settings.LOCALE_PATHS,
        *settings.STATICFILES_DIRS,
        *(d for t in settings.TEMPLATES for d in t["DIRS"]),
    ]
    roots |= {Path(f).resolve().relative_to(ROOT).parts[0] for f in folders}
    return roots | {"manage.py", "pyproject.toml"}


def test_the_build_context_holds_what_runs_and_nothing_else():
    rules = dockerignore_rules()
    files = tracked_files()
    needed = runtime_roots()
    assert {"locale", "templates", "static", "mes", "erp_sync", "shopfloor"} <= needed
    missing = [f for f in files if f.split("/")[0] in needed and not in_context(f, rules)]
    assert not missing, f"needed at run time but left out of the image: {missing[:10]}"
    extra = [f for f in files if f.split("/")[0] not in needed and in_context(f, rules)]
    assert not extra, f"in the image but not needed at run time: {extra[:10]}"
    assert any(f.endswith("django.mo") and in_context(f, rules) for f in files), (
        "compiled translations must be in the image"
    )
    assert not in_context("mes/__pycache__/models.cpython-311.pyc", rules)


def test_the_runtime_stage_copies_the_context():
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime = dockerfile.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^COPY --chown=mes:mes \. \./$", runtime, re.M), runtime
    # The build stage installs the packages pyproject.toml names.
    build = dockerfile.split("\nFROM ", 2)[0] + dockerfile.split("\nFROM ", 2)[1]
    for package in ("mes", "erp_sync", "shopfloor"):
        assert f"COPY {package} ./{package}" in build or "COPY . ./" in build
