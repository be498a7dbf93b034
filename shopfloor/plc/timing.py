"""When to poll a device again. Pure: no Django."""

from __future__ import annotations


def retry_delay(failures: int, *, interval: float, offline_after: int, cap: float) -> float:
    """Seconds until the next attempt after ``failures`` failed polls in a row.

    Until the machine counts as offline it is retried at its normal interval, so that a
    lost link is noticed after ``offline_after`` intervals; after that the delay doubles
    per failure, up to ``cap`` (never below the interval)."""
    if failures < offline_after:
        return interval
    doubled = interval * 2 ** min(failures - offline_after + 1, 30)
    return max(interval, min(cap, doubled))
