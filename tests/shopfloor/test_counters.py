"""Counter deltas, alone: wrap-around at 16 and 32 bits, PLC restarts, garbage, and the
retry schedule of dead devices."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopfloor.plc.counters import StepKind, counter_step, plausible_step
from shopfloor.plc.timing import retry_delay


@pytest.mark.parametrize(
    "previous,current,bits,expected",
    [
        (None, 1234, 16, (0, StepKind.BASELINE)),
        (100, 100, 16, (0, StepKind.COUNT)),
        (100, 107, 16, (7, StepKind.COUNT)),
        (65530, 4, 16, (10, StepKind.WRAP)),
        (65535, 0, 16, (1, StepKind.WRAP)),
        (0xFFFFFFFA, 3, 32, (9, StepKind.WRAP)),
        (500, 3, 16, (3, StepKind.RESET)),
        (70000, 0, 32, (0, StepKind.RESET)),
        (100, 60000, 16, (0, StepKind.IMPLAUSIBLE)),
        (5000, 4000, 16, (0, StepKind.IMPLAUSIBLE)),
    ],
)
def test_counter_step(previous, current, bits, expected):
    step = counter_step(previous, current, bits=bits, max_step=1000)

    assert (step.delta, step.kind) == expected


def test_a_value_wider_than_the_counter_is_refused():
    with pytest.raises(ValueError):
        counter_step(1, 65536, bits=16, max_step=10)


@given(
    bits=st.sampled_from([16, 32]),
    below_top=st.integers(min_value=0, max_value=20_000),
    increments=st.lists(st.integers(min_value=0, max_value=500), max_size=60),
)
def test_counting_through_wraps_loses_and_adds_nothing(bits, below_top, increments):
    """Whatever the start value and however often the counter wraps, the deltas add up to the
    parts made, as long as each read sees at most max_step parts."""
    modulus = 1 << bits
    value = (modulus - 1 - below_top) % modulus
    previous = counter_step(None, value, bits=bits, max_step=500)
    assert previous.delta == 0
    total = 0
    for increment in increments:
        current = (value + increment) % modulus
        total += counter_step(value, current, bits=bits, max_step=500).delta
        value = current
    assert total == sum(increments)


@given(
    bits=st.sampled_from([16, 32]),
    before=st.integers(min_value=1001, max_value=60000),
    since_restart=st.integers(min_value=0, max_value=1000),
)
def test_a_restart_counts_the_parts_made_since(bits, before, since_restart):
    if since_restart >= before:
        return
    step = counter_step(before, since_restart, bits=bits, max_step=1000)

    assert (step.kind, step.delta) == (StepKind.RESET, since_restart)


def test_plausible_step_grows_with_time_but_stays_below_half_the_range():
    assert plausible_step(bits=16, max_rate=50, elapsed_seconds=1) == 100
    assert plausible_step(bits=16, max_rate=50, elapsed_seconds=0) == 50
    assert plausible_step(bits=16, max_rate=50, elapsed_seconds=3600) == 32767
    assert plausible_step(bits=32, max_rate=50, elapsed_seconds=3600) == 50 * 3601


@pytest.mark.parametrize(
    "failures,expected",
    [(1, 1.0), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 30.0), (200, 30.0)],
)
def test_retry_delay_is_the_interval_until_offline_then_doubles_up_to_the_cap(failures, expected):
    assert retry_delay(failures, interval=1.0, offline_after=3, cap=30.0) == expected


def test_retry_delay_never_below_the_interval():
    assert retry_delay(9, interval=60.0, offline_after=3, cap=30.0) == 60.0
