"""Counter deltas: turn successive raw readings of a PLC's part counter into quantities,
through wrap-around (16 and 32 bit) and resets (PLC restart), without double counting.

Pure: no Django. The rule, for a counter of ``bits`` bits and a plausibility bound
``max_step`` (the most parts a machine can make between two reads):

- no previous reading: the first reading is the baseline, nothing is counted;
- the value went up by at most ``max_step``: that many parts;
- it went down, but going up through the top of the range fits in ``max_step``: the
  counter wrapped;
- it went down otherwise: the PLC restarted its count from zero; ``current`` parts were made
  since (if that is plausible);
- anything else (a jump up beyond ``max_step``, garbage): nothing is counted and the new
  value becomes the baseline. Counting garbage would be worse than missing a few parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StepKind(StrEnum):
    BASELINE = "baseline"
    COUNT = "count"
    WRAP = "wrap"
    RESET = "reset"
    IMPLAUSIBLE = "implausible"


@dataclass(frozen=True, slots=True)
class CounterStep:
    delta: int
    kind: StepKind


def counter_step(previous: int | None, current: int, *, bits: int, max_step: int) -> CounterStep:
    """How many parts the move from ``previous`` to ``current`` stands for."""
    modulus = 1 << bits
    if not 0 <= current < modulus:
        raise ValueError(f"{current} does not fit a {bits}-bit counter")
    if previous is None:
        return CounterStep(0, StepKind.BASELINE)
    if current >= previous:
        up = current - previous
        if up <= max_step:
            return CounterStep(up, StepKind.COUNT)
        return CounterStep(0, StepKind.IMPLAUSIBLE)
    wrapped = current + modulus - previous
    if wrapped <= max_step:
        return CounterStep(wrapped, StepKind.WRAP)
    if current <= max_step:
        return CounterStep(current, StepKind.RESET)
    return CounterStep(0, StepKind.IMPLAUSIBLE)


def plausible_step(
    *, bits: int, max_rate: float, elapsed_seconds: float, minimum_seconds: float = 1.0
) -> int:
    """The ``max_step`` for a read ``elapsed_seconds`` after the previous one, for machines
    making at most ``max_rate`` parts per second. Never half the counter's range or more, so
    that wrap and reset stay distinguishable."""
    seconds = max(elapsed_seconds, 0.0) + minimum_seconds
    return max(1, min(int(max_rate * seconds), (1 << (bits - 1)) - 1))
