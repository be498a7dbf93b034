"""Register maps, read planning and decoding, alone; and the connection object."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopfloor.plc.config import parse_connection
from shopfloor.plc.modbus import frame_problem
from shopfloor.plc.registers import (
    DecodeError,
    ReadSpan,
    SpecError,
    decode_counter,
    decode_reading,
    encode_counter,
    parse_register_map,
    plan_reads,
)

MAP = {
    "state": {"table": "holding", "address": 0},
    "state_map": {"1": "running", "2": "idle", "3": "down", "4": "setup"},
    "good_count": {"table": "holding", "address": 1, "words": 2, "word_order": "big"},
    "scrap_count": {"table": "input", "address": 20, "words": 1},
}


def errors_of(data, parse=parse_register_map):
    with pytest.raises(SpecError) as info:
        parse(data)
    return info.value.errors


def test_a_valid_map_parses_and_renders_canonically():
    regmap = parse_register_map(MAP)

    assert regmap.state_for(3) == "down"
    assert regmap.state_for(7) is None
    assert regmap.good_count.bits == 32
    assert regmap.as_json() == {
        **MAP,
        "scrap_count": {"table": "input", "address": 20, "words": 1, "word_order": "big"},
    }
    assert parse_register_map(regmap.as_json()) == regmap


@pytest.mark.parametrize(
    "change,path",
    [
        ({"state": {"table": "coil", "address": 0}}, "registers.state.table"),
        ({"state": {"table": "holding", "address": 70000}}, "registers.state.address"),
        ({"state": {"table": "holding", "address": "0"}}, "registers.state.address"),
        ({"state": {"table": "holding", "address": True}}, "registers.state.address"),
        ({"state_map": {}}, "registers.state_map"),
        ({"state_map": {"1": "exploding"}}, "registers.state_map.1"),
        ({"state_map": {"one": "running"}}, "registers.state_map.one"),
        ({"state_map": {"1": "offline"}}, "registers.state_map.1"),
        ({"good_count": None}, "registers.good_count"),
        (
            {"good_count": {"table": "holding", "address": 1, "words": 3}},
            "registers.good_count.words",
        ),
        (
            {"good_count": {"table": "holding", "address": 1, "word_order": "middle"}},
            "registers.good_count.word_order",
        ),
        (
            {"good_count": {"table": "holding", "address": 65535, "words": 2}},
            "registers.good_count.address",
        ),
        ({"scrap_count": {"table": "input"}}, "registers.scrap_count.address"),
        ({"extra": 1}, "registers.extra"),
    ],
)  # fmt: skip
def test_every_problem_is_named_by_its_path(change, path):
    errors = errors_of({**MAP, **change})

    assert path in errors, errors


def test_all_problems_are_reported_at_once():
    errors = errors_of({"state": {"table": "x", "address": -1}, "state_map": {"1": "running"}})

    assert set(errors) == {
        "registers.state.table",
        "registers.state.address",
        "registers.good_count",
    }


def test_plan_merges_nearby_registers_of_one_table():
    plan = plan_reads(parse_register_map(MAP))

    assert plan.spans == (ReadSpan("holding", 0, 3), ReadSpan("input", 20, 1))
    assert (plan.state_at, plan.good_at, plan.scrap_at) == ((0, 0), (0, 1), (1, 0))


def test_plan_splits_far_apart_registers_and_respects_the_request_limit():
    regmap = parse_register_map(
        {**MAP, "scrap_count": {"table": "holding", "address": 200, "words": 2}}
    )

    plan = plan_reads(regmap)

    assert plan.spans == (ReadSpan("holding", 0, 3), ReadSpan("holding", 200, 2))
    assert plan_reads(regmap, merge_gap=500).spans == (
        ReadSpan("holding", 0, 3),
        ReadSpan("holding", 200, 2),
    )
    assert plan_reads(regmap, merge_gap=500, max_count=300).spans == (ReadSpan("holding", 0, 202),)


@pytest.mark.parametrize(
    "words,order,registers,value",
    [
        (1, "big", [0xBEEF], 0xBEEF),
        (2, "big", [0x0001, 0x0002], 0x00010002),
        (2, "little", [0x0002, 0x0001], 0x00010002),
        (2, "big", [0xFFFF, 0xFFFF], 0xFFFFFFFF),
    ],
)
def test_decode_counter(words, order, registers, value):
    assert decode_counter(registers, order) == value
    assert encode_counter(value, words, order) == registers


@given(
    value=st.integers(min_value=0, max_value=2**32 - 1),
    order=st.sampled_from(["big", "little"]),
)
def test_encode_decode_round_trip(value, order):
    assert decode_counter(encode_counter(value, 2, order), order) == value
    assert decode_counter(encode_counter(value, 1, order), order) == value & 0xFFFF


def test_decode_reading_and_short_answers():
    regmap = parse_register_map(MAP)
    plan = plan_reads(regmap)

    reading = decode_reading(plan, regmap, [[1, 0, 70000 - 65536], [3]])

    assert (reading.state_code, reading.good, reading.scrap) == (1, 70000 - 65536, 3)
    reading = decode_reading(plan, regmap, [[2, 1, 4464], [0]])
    assert reading.good == 70000
    with pytest.raises(DecodeError):
        decode_reading(plan, regmap, [[1, 0], [3]])
    with pytest.raises(DecodeError):
        decode_reading(plan, regmap, [[1, 0, 0]])


# --- the connection object --------------------------------------------------------------


CONNECTION = {
    "protocol": "modbus_tcp",
    "host": "plc-7.plant.local",
    "port": 502,
    "unit_id": 3,
    "poll_interval_ms": 500,
    "timeout_ms": 300,
    "registers": MAP,
}


def test_a_connection_parses_with_defaults():
    spec = parse_connection({"host": "10.0.0.7", "registers": MAP})

    assert (spec.host, spec.port, spec.unit_id) == ("10.0.0.7", 502, 1)
    # Left out, the group is None: an existing connection keeps its own, a new one is "default".
    assert (spec.poll_interval_ms, spec.timeout_ms, spec.group) == (1000, 500, None)
    assert spec.registers == parse_register_map(MAP)


def test_state_map_beside_registers_is_accepted():
    registers = {k: v for k, v in MAP.items() if k != "state_map"}
    spec = parse_connection({**CONNECTION, "registers": registers, "state_map": MAP["state_map"]})

    assert spec.registers == parse_register_map(MAP)
    errors = errors_of({**CONNECTION, "state_map": {"9": "down"}}, parse_connection)
    assert "connection.state_map" in errors


@pytest.mark.parametrize(
    "change,path",
    [
        ({"protocol": "profinet"}, "connection.protocol"),
        ({"host": ""}, "connection.host"),
        ({"host": "plc 7"}, "connection.host"),
        ({"port": 0}, "connection.port"),
        ({"unit_id": 256}, "connection.unit_id"),
        ({"poll_interval_ms": 10}, "connection.poll_interval_ms"),
        ({"timeout_ms": 60000}, "connection.timeout_ms"),
        ({"registers": None}, "connection.registers"),
        ({"group": "nope"}, "connection.group"),
        ({"profile": "no spaces allowed"}, "connection.profile"),
        (
            {"registers": {**MAP, "state": {"table": "coil", "address": 0}}},
            "connection.registers.state.table",
        ),
        ({"colour": "red"}, "connection.colour"),
    ],
)  # fmt: skip
def test_connection_problems_are_named_by_path(change, path):
    assert path in errors_of({**CONNECTION, **change}, parse_connection)


def test_a_connection_must_be_an_object():
    assert errors_of([1, 2], parse_connection) == {"connection": ["Must be an object."]}


# --- frames -------------------------------------------------------------------------------------


def frame(*, protocol=0, length=None, function=3, payload=b"\x04\x00\x01\x00\x02") -> bytes:
    body = bytes([1, function]) + payload
    return struct.pack(">HHH", 7, protocol, len(body) if length is None else length) + body


@pytest.mark.parametrize(
    "data,problem",
    [
        (b"", None),
        (frame(), None),
        (frame()[:10], None),  # not complete yet
        (frame(function=0x83, payload=b"\x02"), None),  # an exception response
        (frame(protocol=5), "protocol id 5, not 0"),
        (frame(length=1), "frame length 1 out of range"),
        (frame(payload=b"\x06\x00\x01"), "byte count 6 does not fit frame length 5"),
        (frame(payload=b"\x03\x00\x01\x00"), "byte count 3 does not fit frame length 6"),
    ],
)
def test_frame_problems(data, problem):
    assert frame_problem(data) == problem
