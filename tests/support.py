"""Helpers for tests that need an external service: skip locally when it is absent, fail
under CI (``CI=true``), where every service must be there."""

from __future__ import annotations

import os
import socket

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, why: str) -> None:
    if condition:
        return
    if in_ci():
        pytest.fail(f"Required service missing under CI: {why}")
    pytest.skip(why)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
