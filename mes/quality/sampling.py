"""When a check is due: the sampling rule of one characteristic, as plain data.

Pure (no ORM). A sample has a key that names it for good, so each due sample is counted
once however the counts arrive:

- first piece: ``first``, due as soon as the operation has started;
- every N good units: ``piece:N``, ``piece:2N``, ... each due once the good quantity
  reaches it. A report that jumps over several boundaries at once makes each of them due;
- every T minutes of running time: ``time:T``, ``time:2T``, ... each due once the
  operation has run that long (paused time does not count);
- last piece: ``last``, due when the good quantity reaches the order's quantity, and at
  Complete in any case.

A sample stays due until a result is recorded for its key.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

# Beyond this many outstanding samples of one rule, only the earliest are listed.
MAX_LISTED = 100


@dataclass(frozen=True)
class SamplingRule:
    first_piece: bool = False
    every_n: int | None = None
    every_minutes: int | None = None
    last_piece: bool = False


@dataclass(frozen=True)
class Sample:
    key: str
    label: str  # "first piece", "piece 50", "after 30 min", "last piece"


def _multiples(limit: int, step: int) -> range:
    return range(step, limit + 1, step)


def due_samples(
    rule: SamplingRule,
    *,
    good: Decimal,
    run_seconds: Decimal,
    target: Decimal,
    completing: bool = False,
    recorded: Collection[str] = (),
) -> list[Sample]:
    """The samples of ``rule`` that are due and not yet in ``recorded`` (sample keys),
    earliest first."""
    due: list[Sample] = []
    if rule.first_piece and "first" not in recorded:
        due.append(Sample("first", label_of("first")))
    if rule.every_n:
        listed = 0
        for piece in _multiples(int(good), rule.every_n):
            key = f"piece:{piece}"
            if key not in recorded:
                due.append(Sample(key, label_of(key)))
                listed += 1
                if listed >= MAX_LISTED:
                    break
    if rule.every_minutes:
        listed = 0
        for minute in _multiples(int(run_seconds // 60), rule.every_minutes):
            key = f"time:{minute}"
            if key not in recorded:
                due.append(Sample(key, label_of(key)))
                listed += 1
                if listed >= MAX_LISTED:
                    break
    if rule.last_piece and (completing or good >= target) and "last" not in recorded:
        due.append(Sample("last", label_of("last")))
    return due


def extra_sample(recorded: Collection[str]) -> Sample:
    """A sample taken outside the plan (an optional check, or an extra look)."""
    n = 1 + sum(1 for key in recorded if key.startswith("extra:"))
    while f"extra:{n}" in recorded:
        n += 1
    return Sample(f"extra:{n}", label_of(f"extra:{n}"))


def label_of(key: str) -> str:
    """The sample's name in English, as results keep it ("piece 50"); screens translate
    it from the key (mes.quality.selectors.sample_display)."""
    kind, _, number = key.partition(":")
    return {
        "first": "first piece",
        "last": "last piece",
        "piece": f"piece {number}",
        "time": f"after {number} min",
        "extra": f"extra sample {number}",
    }.get(kind, key)
