"""The sampling rule alone (mes.quality.sampling): which samples are due, each once."""

from __future__ import annotations

from decimal import Decimal

from mes.quality.sampling import SamplingRule, due_samples, extra_sample

D = Decimal


def keys(rule, **kwargs):
    defaults = {"good": D(0), "run_seconds": D(0), "target": D(100)}
    return [s.key for s in due_samples(rule, **{**defaults, **kwargs})]


def test_first_piece_is_due_at_start_and_once():
    rule = SamplingRule(first_piece=True)
    assert keys(rule) == ["first"]
    assert keys(rule, recorded={"first"}) == []


def test_every_n_counts_each_boundary_once_across_a_jump():
    rule = SamplingRule(every_n=50)
    assert keys(rule, good=D(49)) == []
    # 40 -> 160 in one report crosses 50, 100 and 150: three samples, each once.
    assert keys(rule, good=D(160)) == ["piece:50", "piece:100", "piece:150"]
    assert keys(rule, good=D(160), recorded={"piece:50", "piece:100"}) == ["piece:150"]
    assert keys(rule, good=D(199), recorded={"piece:50", "piece:100", "piece:150"}) == []
    assert keys(rule, good=D(200), recorded={"piece:50", "piece:100", "piece:150"}) == ["piece:200"]


def test_every_n_ignores_fractions_below_the_boundary():
    assert keys(SamplingRule(every_n=10), good=D("9.999")) == []


def test_time_based_counts_running_minutes():
    rule = SamplingRule(every_minutes=30)
    assert keys(rule, run_seconds=D(1799)) == []
    assert keys(rule, run_seconds=D(1800)) == ["time:30"]
    assert keys(rule, run_seconds=D(5400), recorded={"time:30"}) == ["time:60", "time:90"]


def test_last_piece_due_at_target_or_at_complete():
    rule = SamplingRule(last_piece=True)
    assert keys(rule, good=D(99)) == []
    assert keys(rule, good=D(99), completing=True) == ["last"]
    assert keys(rule, good=D(100)) == ["last"]
    assert keys(rule, good=D(100), recorded={"last"}) == []


def test_rules_combine_in_order():
    rule = SamplingRule(first_piece=True, every_n=50, last_piece=True)
    assert keys(rule, good=D(100)) == ["first", "piece:50", "piece:100", "last"]


def test_extra_samples_number_themselves():
    assert extra_sample(set()).key == "extra:1"
    assert extra_sample({"extra:1", "first"}).key == "extra:2"
