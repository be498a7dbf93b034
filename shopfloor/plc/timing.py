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


def poll_lease_seconds(*, beat: float, wait: float) -> float:
    """How long a worker holds a poll group's lease for one window (it gives it back when
    the window ends, so the next beat may go to any worker).

    A window starts cycles for up to 0.9 of a beat; its last cycle waits at most ``wait``
    for answers, then writes. Half a beat more covers the writes. A worker killed in the
    middle of a window leaves the lease to run out that long after the window began: with
    the defaults (beat 1 s, wait 0.5 s) 1.9 s, so another worker takes the group over at the
    beat after next (or, when that window had begun late, the one after): the group misses
    at most two cycles."""
    return 0.9 * beat + wait + 0.5 * beat
