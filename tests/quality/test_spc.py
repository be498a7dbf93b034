"""Tests of the pure SPC module and the SVG control chart renderer (no database)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mes.quality import spc
from mes.quality.charts import control_chart_svg
from mes.quality.spc import (
    Limits,
    Violation,
    analyse,
    capability,
    compute_limits,
    individuals_limits,
    limits_from_dict,
    limits_to_dict,
    western_electric,
    xbar_r_limits,
)

SVG = "{http://www.w3.org/2000/svg}"


def rules(violations: list[Violation]) -> list[tuple[int, int]]:
    return [(v.index, v.rule) for v in violations]


# --------------------------------------------------------------------------------------------
# Control limits
# --------------------------------------------------------------------------------------------


def test_individuals_limits_hand_worked() -> None:
    # values 10, 12, 11, 13, 12
    # mean = 58 / 5 = 11.6
    # moving ranges |12-10|=2, |11-12|=1, |13-11|=2, |12-13|=1 -> MRbar = 6 / 4 = 1.5
    # UCL = 11.6 + 2.66 * 1.5 = 11.6 + 3.99 = 15.59 ; LCL = 11.6 - 3.99 = 7.61
    # sigma = 1.5 / 1.128 = 1.32979 ; MR UCL = 3.267 * 1.5 = 4.9005 ; MR LCL = 0
    lim = individuals_limits([10, 12, 11, 13, 12])
    assert lim.kind == "imr"
    assert lim.subgroup_size == 1
    assert lim.n == 5
    assert lim.center == pytest.approx(11.6)
    assert lim.range_center == pytest.approx(1.5)
    assert lim.ucl == pytest.approx(15.59)
    assert lim.lcl == pytest.approx(7.61)
    assert lim.sigma == pytest.approx(1.5 / 1.128)
    assert lim.sigma == pytest.approx(1.32979, abs=1e-5)
    assert lim.range_ucl == pytest.approx(4.9005)
    assert lim.range_lcl == 0
    # sigma of the plotted points = (UCL - center) / 3 = 3.99 / 3 = 1.33
    assert lim.point_sigma == pytest.approx(1.33)


def test_xbar_r_limits_hand_worked_size_2() -> None:
    # subgroups [9, 11], [10, 14], [6.5, 9.5]
    # means 10, 12, 8 -> X-bar-bar = 30 / 3 = 10
    # ranges 2, 4, 3 -> Rbar = 9 / 3 = 3
    # n = 2: A2 = 1.880 -> UCL = 10 + 1.88 * 3 = 15.64, LCL = 10 - 5.64 = 4.36
    # sigma = Rbar / d2 = 3 / 1.128 = 2.65957
    # R chart: D4 = 3.267 -> 3.267 * 3 = 9.801, D3 = 0 -> 0
    lim = xbar_r_limits([[9, 11], [10, 14], [6.5, 9.5]])
    assert lim.kind == "xbar_r"
    assert lim.subgroup_size == 2
    assert lim.n == 3
    assert lim.center == pytest.approx(10)
    assert lim.range_center == pytest.approx(3)
    assert lim.ucl == pytest.approx(15.64)
    assert lim.lcl == pytest.approx(4.36)
    assert lim.sigma == pytest.approx(2.65957, abs=1e-5)
    assert lim.range_ucl == pytest.approx(9.801)
    assert lim.range_lcl == 0


def test_xbar_r_limits_size_7_has_nonzero_d3() -> None:
    # subgroups 0..6 and 1..7: means 3 and 4 -> X-bar-bar 3.5 ; ranges 6 and 6 -> Rbar 6
    # n = 7: A2 = 0.419 -> UCL = 3.5 + 0.419 * 6 = 3.5 + 2.514 = 6.014, LCL = 0.986
    # D3 = 0.076 -> R LCL = 0.456 ; D4 = 1.924 -> R UCL = 11.544 ; sigma = 6 / 2.704 = 2.21893
    lim = xbar_r_limits([[0, 1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7]])
    assert lim.center == pytest.approx(3.5)
    assert lim.ucl == pytest.approx(6.014)
    assert lim.lcl == pytest.approx(0.986)
    assert lim.range_lcl == pytest.approx(0.456)
    assert lim.range_ucl == pytest.approx(11.544)
    assert lim.sigma == pytest.approx(2.21893, abs=1e-5)


def test_constant_tables_match_the_standard_values() -> None:
    assert [spc.A2[n] for n in range(2, 11)] == [
        1.880, 1.023, 0.729, 0.577, 0.483, 0.419, 0.373, 0.337, 0.308,
    ]  # fmt: skip
    assert [spc.D3[n] for n in range(2, 11)] == [0, 0, 0, 0, 0, 0.076, 0.136, 0.184, 0.223]
    assert [spc.D4[n] for n in range(2, 11)] == [
        3.267, 2.574, 2.282, 2.114, 2.004, 1.924, 1.864, 1.816, 1.777,
    ]  # fmt: skip
    assert [spc.D2[n] for n in range(2, 11)] == [
        1.128, 1.693, 2.059, 2.326, 2.534, 2.704, 2.847, 2.970, 3.078,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "subgroups",
    [
        [[1.0]],  # one subgroup
        [[1, 2], [1, 2, 3]],  # mixed sizes
        [[1], [2]],  # size 1 is not an X-bar R chart
        [list(range(11)), list(range(11))],  # size 11 is beyond the tables
        [[1, float("nan")], [1, 2]],  # not finite
    ],
)
def test_xbar_r_limits_rejects_bad_input(subgroups: list[list[float]]) -> None:
    with pytest.raises(ValueError):
        xbar_r_limits(subgroups)


@pytest.mark.parametrize("values", [[], [5.0], [1.0, float("inf")]])
def test_individuals_limits_rejects_bad_input(values: list[float]) -> None:
    with pytest.raises(ValueError):
        individuals_limits(values)


def test_individuals_limits_of_constant_values_have_zero_width() -> None:
    # all equal -> MRbar 0 -> UCL = LCL = center, sigma 0
    lim = individuals_limits([4, 4, 4])
    assert (lim.lcl, lim.center, lim.ucl, lim.sigma) == (4, 4, 4, 0)


def test_compute_limits_chooses_imr_for_single_values() -> None:
    lim = compute_limits([[10], [12], [11], [13], [12]])
    assert lim == individuals_limits([10, 12, 11, 13, 12])


def test_compute_limits_chooses_xbar_r_for_subgroups() -> None:
    lim = compute_limits([[9, 11], [10, 14], [6.5, 9.5]])
    assert lim == xbar_r_limits([[9, 11], [10, 14], [6.5, 9.5]])


def test_compute_limits_drops_subgroups_of_an_odd_size() -> None:
    # most common size is 2 (three subgroups); the single [7] is left out -> same as above
    lim = compute_limits([[9, 11], [10, 14], [7], [6.5, 9.5]])
    assert lim == xbar_r_limits([[9, 11], [10, 14], [6.5, 9.5]])
    assert lim.n == 3


def test_compute_limits_mostly_single_values_stays_imr() -> None:
    # sizes 1, 1, 1, 2: the most common size is 1 -> I-MR over 1, 2, 3 (the pair is dropped)
    # mean 2, MRbar (1 + 1) / 2 = 1 -> UCL 2 + 2.66 = 4.66
    lim = compute_limits([[1], [2], [3], [4, 5]])
    assert lim.kind == "imr"
    assert lim.n == 3
    assert lim.ucl == pytest.approx(4.66)


def test_compute_limits_tie_prefers_the_larger_size() -> None:
    lim = compute_limits([[1], [9, 11], [2], [10, 14]])
    assert lim.kind == "xbar_r"
    assert lim.subgroup_size == 2
    assert lim.n == 2


@pytest.mark.parametrize("subgroups", [[], [[1.0]], [[1.0], []]])
def test_compute_limits_rejects_too_little_data(subgroups: list[list[float]]) -> None:
    with pytest.raises(ValueError):
        compute_limits(subgroups)


# --------------------------------------------------------------------------------------------
# Western Electric rules (center 0, sigma 1 throughout)
# --------------------------------------------------------------------------------------------


def test_rule_1_one_point_beyond_3_sigma_either_side() -> None:
    # 3.5 > 3 (above) at index 1, -3.1 < -3 (below) at index 3; exactly 3.0 is not beyond
    found = western_electric([0, 3.5, 0, -3.1, 3.0], 0, 1)
    assert rules(found) == [(1, 1), (3, 1)]
    assert found[0].message == "Rule 1: 1 point beyond 3 sigma above the center line"
    assert found[1].message == "Rule 1: 1 point beyond 3 sigma below the center line"


def test_rule_2_two_of_three_beyond_2_sigma_same_side() -> None:
    # window at index 3 = [2.5, 0.5, 2.1]: 2.5 and 2.1 are > 2 -> 2 of 3 above
    # rule 3 does not fire: only 2.5 and 2.1 are > 1 in [0, 2.5, 0.5, 2.1]
    found = western_electric([0, 2.5, 0.5, 2.1], 0, 1)
    assert rules(found) == [(3, 2)]
    assert found[0].message == "Rule 2: 2 of 3 points beyond 2 sigma above the center line"


def test_rule_2_below() -> None:
    found = western_electric([-2.2, 0, -2.9], 0, 1)
    assert rules(found) == [(2, 2)]
    assert "below" in found[0].message


@pytest.mark.parametrize(
    "series",
    [
        [0, 2.5, 0.5, -2.1],  # 2 beyond 2 sigma within 3 points but on opposite sides
        [2.5, 0, 0, 2.5],  # 2 beyond 2 sigma but 4 points apart
        [2.0, 2.5, 1.9],  # exactly 2.0 is not beyond 2 sigma
    ],
)
def test_rule_2_near_misses(series: list[float]) -> None:
    assert 2 not in {v.rule for v in western_electric(series, 0, 1)}


def test_rule_2_flag_sits_on_a_point_that_is_out() -> None:
    # [2.5, 2.5, 0]: the pattern is complete at index 1 (both out); index 2 (0) is not flagged
    assert rules(western_electric([2.5, 2.5, 0], 0, 1)) == [(1, 2)]
    # [2.5, 0.3, 2.5]: only index 2 (the second point out) carries the flag
    assert rules(western_electric([2.5, 0.3, 2.5], 0, 1)) == [(2, 2)]


def test_rule_3_four_of_five_beyond_1_sigma_same_side() -> None:
    # [1.5, 1.2, 0.5, 1.1, 1.3]: 1.5, 1.2, 1.1, 1.3 > 1 -> 4 of 5 above at index 4
    # at index 3 the window [1.5, 1.2, 0.5, 1.1] has only 3 -> nothing there
    found = western_electric([1.5, 1.2, 0.5, 1.1, 1.3], 0, 1)
    assert rules(found) == [(4, 3)]
    assert found[0].message == "Rule 3: 4 of 5 points beyond 1 sigma above the center line"


@pytest.mark.parametrize(
    "series",
    [
        [1.5, 1.2, 0.5, -1.1, 1.3],  # the fourth point is out on the other side
        [1.0, 1.2, 1.5, 1.1, 0.5],  # 1.0 is not beyond, and the last point is not out
        [1.5, 1.2, 0.5, 0.2, 1.1, 1.3],  # 4 out, but spread over 6 points
    ],
)
def test_rule_3_near_misses(series: list[float]) -> None:
    assert 3 not in {v.rule for v in western_electric(series, 0, 1)}


def test_rule_4_eight_in_a_row_on_one_side() -> None:
    found = western_electric([0.5] * 8, 0, 1)
    assert rules(found) == [(7, 4)]
    assert found[0].message == "Rule 4: 8 points in a row above the center line"
    below = western_electric([-0.2] * 8, 0, 1)
    assert rules(below) == [(7, 4)]
    assert "below" in below[0].message


def test_rule_4_long_run_reports_every_window_end() -> None:
    # 10 points above: windows of 8 end at indices 7, 8, 9
    assert rules(western_electric([0.5] * 10, 0, 1)) == [(7, 4), (8, 4), (9, 4)]


@pytest.mark.parametrize(
    "series",
    [
        [0.5] * 7,  # only 7 in a row
        [0.5] * 4 + [0.0] + [0.5] * 4,  # a point exactly on the center line breaks the run
        [0.5] * 4 + [-0.5] + [0.5] * 4,  # a point on the other side breaks it
    ],
)
def test_rule_4_near_misses(series: list[float]) -> None:
    assert western_electric(series, 0, 1) == []


def test_several_rules_sorted_by_index_then_rule() -> None:
    # ten points at 1.5: rule 3 from index 3 on (4 out of the first 4 points, then of every 5),
    # rule 4 at 7, 8, 9; at the same index rule 3 comes before rule 4
    found = rules(western_electric([1.5] * 10, 0, 1))
    expected = [(i, 3) for i in range(3, 7)] + [p for i in range(7, 10) for p in [(i, 3), (i, 4)]]
    assert found == expected
    assert found == sorted(found)


def test_each_index_rule_pair_at_most_once() -> None:
    found = rules(western_electric([3.5] * 12, 0, 1))
    assert len(found) == len(set(found))


def test_western_electric_with_non_positive_sigma_is_empty() -> None:
    assert western_electric([5, 10, 20], 0, 0) == []
    assert western_electric([5, 10, 20], 0, -1) == []


def test_western_electric_uses_center_and_sigma() -> None:
    # center 100, sigma 2: 3 sigma above is 106 -> 107 is out; 103 is within 2 sigma (104)
    assert rules(western_electric([100, 107, 103], 100, 2)) == [(1, 1)]


# --------------------------------------------------------------------------------------------
# Capability
# --------------------------------------------------------------------------------------------


def test_capability_two_sided() -> None:
    # values 9, 10, 11 -> mean 10 ; sigma 0.5
    # Cp = (14 - 7) / (6 * 0.5) = 7 / 3 = 2.3333
    # Cpk = min(14 - 10, 10 - 7) / (3 * 0.5) = 3 / 1.5 = 2.0
    cap = capability([9, 10, 11], lsl=7, usl=14, sigma_within=0.5)
    assert cap is not None
    assert cap.n == 3
    assert cap.mean == pytest.approx(10)
    assert cap.sigma_within == 0.5
    assert cap.cp == pytest.approx(7 / 3)
    assert cap.cpk == pytest.approx(2.0)


def test_capability_one_sided() -> None:
    # upper only: Cpk = (14 - 10) / 1.5 = 2.6667, Cp undefined
    upper = capability([9, 10, 11], lsl=None, usl=14, sigma_within=0.5)
    assert upper is not None
    assert upper.cp is None
    assert upper.cpk == pytest.approx(8 / 3)
    # lower only: Cpk = (10 - 7) / 1.5 = 2.0
    lower = capability([9, 10, 11], lsl=7, usl=None, sigma_within=0.5)
    assert lower is not None
    assert lower.cp is None
    assert lower.cpk == pytest.approx(2.0)


def test_capability_mean_outside_spec_gives_negative_cpk() -> None:
    # mean 10, USL 9: Cpk = min(9 - 10, 10 - 5) / (3 * 1) = -1 / 3
    cap = capability([10, 10], lsl=5, usl=9, sigma_within=1)
    assert cap is not None
    assert cap.cpk == pytest.approx(-1 / 3)


def test_capability_without_limits_or_sigma() -> None:
    none = capability([9, 10, 11], lsl=None, usl=None, sigma_within=0.5)
    assert none is not None
    assert (none.cp, none.cpk) == (None, None)
    zero = capability([10, 10, 10], lsl=7, usl=14, sigma_within=0)
    assert zero is not None
    assert (zero.cp, zero.cpk) == (None, None)
    assert zero.mean == 10
    assert capability([], lsl=7, usl=14, sigma_within=1) is None


# --------------------------------------------------------------------------------------------
# analyse
# --------------------------------------------------------------------------------------------


def test_analyse_individuals_from_the_data() -> None:
    result = analyse([[10], [12], [11], [13], [12]], lsl=8, usl=16)
    assert result.baseline is False
    assert result.limits == individuals_limits([10, 12, 11, 13, 12])
    assert result.points == [10, 12, 11, 13, 12]
    assert result.ranges == [None, 2, 1, 2, 1]
    assert result.violations == []
    cap = result.capability
    assert cap is not None
    # sigma = 1.5 / 1.128 = 1.32979 ; Cp = 8 / (6 * 1.32979) = 8 / 7.97872 = 1.00267
    # Cpk = min(16 - 11.6, 11.6 - 8) / (3 * 1.32979) = 3.6 / 3.98936 = 0.90240
    assert cap.sigma_within == pytest.approx(1.5 / 1.128)
    assert cap.cp == pytest.approx(1.00267, abs=1e-5)
    assert cap.cpk == pytest.approx(0.90240, abs=1e-5)


def test_analyse_xbar_r() -> None:
    result = analyse([[9, 11], [10, 14], [6.5, 9.5]], lsl=None, usl=None)
    assert result.limits is not None
    assert result.limits.kind == "xbar_r"
    assert result.points == [10, 12, 8]
    assert result.ranges == [2, 4, 3]
    assert result.capability is not None
    assert result.capability.n == 6  # all individual values
    assert result.capability.mean == pytest.approx(10)  # (20 + 24 + 16) / 6
    assert result.capability.cp is None


def test_analyse_with_frozen_baseline() -> None:
    baseline = Limits(
        kind="imr",
        subgroup_size=1,
        center=10,
        ucl=13,
        lcl=7,
        sigma=1,
        range_center=1.128,
        range_ucl=3.685,
        range_lcl=0,
        n=20,
    )
    data = [[10], [14], [10]]
    # against the baseline: point sigma (13 - 10) / 3 = 1 ; 14 > 10 + 3 -> rule 1 at index 1
    result = analyse(data, lsl=4, usl=16, baseline=baseline)
    assert result.baseline is True
    assert result.limits is baseline
    assert rules(result.violations) == [(1, 1)]
    assert result.capability is not None
    # within sigma from the baseline (1), mean of the data 34 / 3 = 11.333
    # Cp = 12 / 6 = 2 ; Cpk = (16 - 11.333) / 3 = 1.5556
    assert result.capability.sigma_within == 1
    assert result.capability.cp == pytest.approx(2)
    assert result.capability.cpk == pytest.approx((16 - 34 / 3) / 3)
    # from the data itself: MRbar (4 + 4) / 2 = 4 -> UCL 11.333 + 10.64 = 21.97 -> nothing out
    own = analyse(data, lsl=4, usl=16)
    assert own.baseline is False
    assert own.limits is not None
    assert own.limits.ucl == pytest.approx(34 / 3 + 10.64)
    assert own.violations == []


def test_analyse_with_too_little_data() -> None:
    one = analyse([[5.0]], lsl=1, usl=9)
    assert one.limits is None
    assert one.points == [5.0]
    assert one.ranges == [None]
    assert one.violations == []
    assert one.capability is None
    empty = analyse([], lsl=None, usl=None)
    assert (empty.limits, empty.points, empty.ranges, empty.violations) == (None, [], [], [])
    single_subgroup = analyse([[1, 2, 3]], lsl=None, usl=None)
    assert single_subgroup.limits is None
    assert single_subgroup.ranges == [2]


def test_analyse_rejects_empty_subgroups() -> None:
    with pytest.raises(ValueError):
        analyse([[1], []], lsl=None, usl=None)


def test_analyse_flags_a_shift_in_the_data() -> None:
    # baseline from 9.9, 10.1 alternating: mean 10, every moving range 0.2 -> MRbar 0.2
    # UCL = 10 + 2.66 * 0.2 = 10.532 -> point sigma 0.532 / 3 = 0.17733
    baseline = individuals_limits([9.9, 10.1] * 10)
    # the data: 10.1, 9.9 five times (indices 0..9, all within 1 sigma, no run),
    # then 10.6 ten times (indices 10..19): 0.6 above the center is 3.38 sigma
    data = [[10.1], [9.9]] * 5 + [[10.6]] * 10
    result = analyse(data, lsl=None, usl=None, baseline=baseline)
    by_rule = {r: [v.index for v in result.violations if v.rule == r] for r in (1, 2, 3, 4)}
    assert by_rule[1] == list(range(10, 20))  # every shifted point is beyond 3 sigma
    assert by_rule[2] == list(range(11, 20))  # the second shifted point completes 2 of 3
    assert by_rule[3] == list(range(13, 20))  # the fourth completes 4 of 5
    assert by_rule[4] == list(range(17, 20))  # the eighth completes 8 in a row (9.9 at 9)


# --------------------------------------------------------------------------------------------
# JSON round trip
# --------------------------------------------------------------------------------------------


def test_limits_round_trip_through_json() -> None:
    for lim in (
        individuals_limits([10, 12, 11, 13, 12]),
        xbar_r_limits([[0, 1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7]]),
    ):
        data = json.loads(json.dumps(limits_to_dict(lim)))
        assert data["kind"] == lim.kind
        assert limits_from_dict(data) == lim


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "p_chart"},
        {"ucl": "not a number"},
        {"center": float("nan")},
        {"n": None},
    ],
)
def test_limits_from_dict_rejects_bad_data(change: dict[str, object]) -> None:
    data = limits_to_dict(individuals_limits([1, 2, 3])) | change
    with pytest.raises(ValueError):
        limits_from_dict(data)


def test_limits_from_dict_rejects_missing_field() -> None:
    data = limits_to_dict(individuals_limits([1, 2, 3]))
    del data["sigma"]
    with pytest.raises(ValueError, match="sigma"):
        limits_from_dict(data)


# --------------------------------------------------------------------------------------------
# SVG chart
# --------------------------------------------------------------------------------------------


def classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def markers(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter() if "point" in classes(e)]


def test_chart_svg_structure_and_markers() -> None:
    svg = control_chart_svg(
        title="Bore <diameter> & depth",
        points=[10, 12, 11, 13, 12, 20],
        center=11.6,
        ucl=15.59,
        lcl=7.61,
        flagged=[5, 99],  # 99 is out of range and ignored
        labels=["A1", "A2", "A3", "A4", "A5", "A6"],
        unit="mm",
        spec=(8.0, 16.0),
    )
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("viewBox") == "0 0 900 260"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    # the raw title is escaped in the source and comes back intact from the parser
    assert "<diameter>" not in svg
    assert "&lt;diameter&gt; &amp; depth" in svg
    assert title.text == "Bore <diameter> & depth"
    assert desc.text is not None
    assert "6 points, 1 flagged" in desc.text

    found = markers(root)
    assert len(found) == 6
    flagged = [e for e in found if "flagged" in classes(e)]
    normal = [e for e in found if "flagged" not in classes(e)]
    assert len(flagged) == 1
    assert {e.tag for e in normal} == {f"{SVG}circle"}
    assert flagged[0].tag != f"{SVG}circle"  # a different shape, not only a different colour
    assert flagged[0].get("fill") != normal[0].get("fill")
    tips = [e.findtext(f"{SVG}title") for e in found]
    assert tips[0] == "A1: 10.00 mm"
    assert tips[5] == "A6: 20.00 mm (flagged)"

    # limit lines: center solid, control limits dashed, spec dotted, all labelled
    line_classes = [classes(e) for e in root.iter(f"{SVG}line")]
    assert {"cl"} in line_classes and {"ucl"} in line_classes and {"lcl"} in line_classes
    assert sum(1 for c in line_classes if "spec" in c) == 2
    cl = next(e for e in root.iter(f"{SVG}line") if classes(e) == {"cl"})
    ucl = next(e for e in root.iter(f"{SVG}line") if classes(e) == {"ucl"})
    assert cl.get("stroke-dasharray") is None
    assert ucl.get("stroke-dasharray")
    texts = ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]
    assert "UCL 15.59" in texts
    assert "LCL 7.61" in texts
    assert "USL 16.00" in texts
    assert "LSL 8.00" in texts
    series = [e for e in root.iter(f"{SVG}polyline") if "series" in classes(e)]
    assert len(series) == 1
    assert len(series[0].get("points", "").split()) == 6


def test_chart_without_points_says_no_data() -> None:
    svg = control_chart_svg(title="Empty", points=[], center=None, ucl=None, lcl=None)
    root = ET.fromstring(svg)
    assert markers(root) == []
    assert "No data yet" in "".join(root.itertext())


def test_chart_single_point_and_no_limits() -> None:
    svg = control_chart_svg(title="One", points=[3.2], center=None, ucl=None, lcl=None)
    root = ET.fromstring(svg)
    assert len(markers(root)) == 1
    assert not [e for e in root.iter(f"{SVG}line") if classes(e) & {"cl", "ucl", "lcl"}]
    assert "nan" not in svg.lower()


def test_chart_all_points_equal() -> None:
    svg = control_chart_svg(
        title="Flat", points=[5.0] * 4, center=5.0, ucl=5.0, lcl=5.0, flagged=[0, 1, 2, 3]
    )
    root = ET.fromstring(svg)
    assert len(markers(root)) == 4
    assert all("flagged" in classes(e) for e in markers(root))
    assert "nan" not in svg.lower() and "inf" not in svg.lower()


def test_chart_large_series_stays_small() -> None:
    points = [10 + math.sin(i / 7) for i in range(500)]
    svg = control_chart_svg(
        title="Big", points=points, center=10, ucl=11.5, lcl=8.5, flagged=range(0, 500, 50)
    )
    assert len(svg.encode()) < 200_000
    assert len(markers(ET.fromstring(svg))) == 500


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

finite_values = st.lists(
    st.floats(min_value=-1000, max_value=1000, allow_nan=False, allow_infinity=False),
    min_size=2,
    max_size=60,
)


@given(finite_values)
@settings(max_examples=200, deadline=None)
def test_property_limits_ordered_and_rule_indices_in_range(values: list[float]) -> None:
    lim = individuals_limits(values)
    assert lim.lcl <= lim.center <= lim.ucl
    assert lim.sigma >= 0
    assert lim.range_lcl <= lim.range_center <= lim.range_ucl
    found = western_electric(values, lim.center, lim.point_sigma)
    assert all(0 <= v.index < len(values) and 1 <= v.rule <= 4 for v in found)
    keys = rules(found)
    assert keys == sorted(set(keys))


@given(finite_values, st.sets(st.integers(min_value=0, max_value=80)))
@settings(max_examples=50, deadline=None)
def test_property_chart_always_parses(values: list[float], flagged: set[int]) -> None:
    result = analyse([[v] for v in values], lsl=None, usl=None)
    assert result.limits is not None
    svg = control_chart_svg(
        title="P",
        points=result.points,
        center=result.limits.center,
        ucl=result.limits.ucl,
        lcl=result.limits.lcl,
        flagged=flagged,
    )
    root = ET.fromstring(svg)
    found = markers(root)
    assert len(found) == len(values)
    assert sum(1 for e in found if "flagged" in classes(e)) == len(
        {i for i in flagged if i < len(values)}
    )
