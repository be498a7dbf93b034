"""Register maps: validation of the contract's ``registers`` object, read planning and
decoding of what a PLC answers.

Pure: plain data in, plain data out, no Django. The poller, the services, the simulator
and the benchmark share it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HOLDING = "holding"
INPUT = "input"
TABLES = (HOLDING, INPUT)
BIG = "big"
LITTLE = "little"
WORD_ORDERS = (BIG, LITTLE)
# What a PLC code may map to; offline and unknown are the MES's own conclusions.
PLC_STATES = ("running", "idle", "down", "setup")
MAX_ADDRESS = 65535
MAX_REGISTER_VALUE = 0xFFFF
# Function codes 3 and 4 return at most 125 registers per request.
MAX_READ_COUNT = 125
# Reading a few unused registers costs less than a second request round trip.
MERGE_GAP = 16

REGISTER_KEYS = ("state", "state_map", "good_count", "scrap_count")


class SpecError(ValueError):
    """Invalid configuration; ``errors`` maps field paths to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class DecodeError(ValueError):
    """The PLC answered, but not with what the register map needs."""


@dataclass(frozen=True, slots=True)
class RegisterRef:
    table: str
    address: int


@dataclass(frozen=True, slots=True)
class CounterSpec:
    table: str
    address: int
    words: int = 1
    word_order: str = BIG

    @property
    def bits(self) -> int:
        return 16 * self.words

    def as_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "address": self.address,
            "words": self.words,
            "word_order": self.word_order,
        }


@dataclass(frozen=True)
class RegisterMap:
    state: RegisterRef
    state_map: Mapping[int, str]
    good_count: CounterSpec
    scrap_count: CounterSpec | None = None

    def state_for(self, code: int) -> str | None:
        return self.state_map.get(code)

    def as_json(self) -> dict[str, Any]:
        """The contract's ``registers`` object, in a canonical form."""
        return {
            "state": {"table": self.state.table, "address": self.state.address},
            "state_map": {str(code): self.state_map[code] for code in sorted(self.state_map)},
            "good_count": self.good_count.as_json(),
            "scrap_count": self.scrap_count.as_json() if self.scrap_count else None,
        }


# --- Validation ----------------------------------------------------------------------------


class FieldErrors:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise SpecError(self.errors)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(value: Any, path: str, errors: FieldErrors, low: int, high: int) -> int | None:
    if not _is_int(value):
        errors.add(path, "Enter a whole number.")
        return None
    if not low <= value <= high:
        errors.add(path, f"Must be between {low} and {high}.")
        return None
    return value


def check_object(value: Any, path: str, errors: FieldErrors, allowed: Sequence[str]) -> bool:
    if not isinstance(value, Mapping):
        errors.add(path, "Must be an object.")
        return False
    for key in value:
        if key not in allowed:
            errors.add(f"{path}.{key}", f"Unknown field; expected {', '.join(allowed)}.")
    return True


def _table(value: Any, path: str, errors: FieldErrors) -> str | None:
    if value not in TABLES:
        errors.add(path, f"Must be one of {', '.join(TABLES)}.")
        return None
    return value


def _register_ref(data: Any, path: str, errors: FieldErrors) -> RegisterRef | None:
    if not check_object(data, path, errors, ("table", "address")):
        return None
    table = _table(data.get("table"), f"{path}.table", errors)
    address = check_int(data.get("address"), f"{path}.address", errors, 0, MAX_ADDRESS)
    if table is None or address is None:
        return None
    return RegisterRef(table, address)


def _counter(data: Any, path: str, errors: FieldErrors) -> CounterSpec | None:
    if not check_object(data, path, errors, ("table", "address", "words", "word_order")):
        return None
    table = _table(data.get("table"), f"{path}.table", errors)
    address = check_int(data.get("address"), f"{path}.address", errors, 0, MAX_ADDRESS)
    words = data.get("words", 1)
    if words not in (1, 2) or not _is_int(words):
        errors.add(f"{path}.words", "Must be 1 (16-bit counter) or 2 (32-bit counter).")
        words = None
    order = data.get("word_order", BIG)
    if order not in WORD_ORDERS:
        errors.add(f"{path}.word_order", f"Must be one of {', '.join(WORD_ORDERS)}.")
        order = None
    if None in (table, address, words, order):
        return None
    if address + words - 1 > MAX_ADDRESS:
        errors.add(f"{path}.address", f"A {words}-word counter must start at most at 65534.")
        return None
    return CounterSpec(table, address, words, order)


def _state_map(data: Any, path: str, errors: FieldErrors) -> dict[int, str] | None:
    if not isinstance(data, Mapping) or not data:
        errors.add(path, 'Map at least one PLC code to a state, e.g. {"1": "running"}.')
        return None
    result: dict[int, str] = {}
    for key, state in data.items():
        try:
            code = int(key) if not isinstance(key, bool) else None
        except (TypeError, ValueError):
            code = None
        if code is None or str(code) != str(key).strip() or not 0 <= code <= MAX_REGISTER_VALUE:
            errors.add(f"{path}.{key}", "PLC codes are whole numbers from 0 to 65535.")
            continue
        if state not in PLC_STATES:
            errors.add(f"{path}.{key}", f"Must be one of {', '.join(PLC_STATES)}.")
            continue
        result[code] = state
    return result


def parse_register_map(data: Any, *, path: str = "registers") -> RegisterMap:
    """Validate the contract's ``registers`` object. Raises :class:`SpecError` listing every
    problem by field path (``registers.good_count.words``)."""
    errors = FieldErrors()
    if not check_object(data, path, errors, REGISTER_KEYS):
        errors.raise_if_any()
    state = _register_ref(data.get("state"), f"{path}.state", errors)
    state_map = _state_map(data.get("state_map"), f"{path}.state_map", errors)
    good = _counter(data.get("good_count"), f"{path}.good_count", errors)
    scrap_data = data.get("scrap_count")
    scrap = None if scrap_data is None else _counter(scrap_data, f"{path}.scrap_count", errors)
    errors.raise_if_any()
    assert state is not None and state_map is not None and good is not None
    return RegisterMap(state=state, state_map=state_map, good_count=good, scrap_count=scrap)


# --- Read planning ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadSpan:
    """One Modbus read request: ``count`` registers of ``table`` from ``address``."""

    table: str
    address: int
    count: int


@dataclass(frozen=True)
class ReadPlan:
    spans: tuple[ReadSpan, ...]
    # (span index, offset in that span) of each value the map needs.
    state_at: tuple[int, int]
    good_at: tuple[int, int]
    scrap_at: tuple[int, int] | None


def plan_reads(
    regmap: RegisterMap, *, merge_gap: int = MERGE_GAP, max_count: int = MAX_READ_COUNT
) -> ReadPlan:
    """As few requests as possible: registers of one table that lie close together are read
    in one request."""
    wanted: list[tuple[str, str, int, int]] = [
        ("state", regmap.state.table, regmap.state.address, 1),
        ("good", regmap.good_count.table, regmap.good_count.address, regmap.good_count.words),
    ]
    if regmap.scrap_count is not None:
        c = regmap.scrap_count
        wanted.append(("scrap", c.table, c.address, c.words))
    spans: list[list[Any]] = []  # [table, start, end)
    for _name, table, address, count in sorted(wanted, key=lambda w: (w[1], w[2])):
        last = spans[-1] if spans else None
        end = address + count
        if (
            last is not None
            and last[0] == table
            and address - last[2] <= merge_gap
            and max(last[2], end) - last[1] <= max_count
        ):
            last[2] = max(last[2], end)
        else:
            spans.append([table, address, end])
    frozen = tuple(ReadSpan(t, start, end - start) for t, start, end in spans)

    def locate(table: str, address: int, count: int) -> tuple[int, int]:
        for index, span in enumerate(frozen):
            if span.table == table and span.address <= address < address + count <= (
                span.address + span.count
            ):
                return index, address - span.address
        raise AssertionError("every wanted register lies in a span")

    located = {name: locate(t, a, n) for name, t, a, n in wanted}
    return ReadPlan(
        spans=frozen,
        state_at=located["state"],
        good_at=located["good"],
        scrap_at=located.get("scrap"),
    )


# --- Decoding ----------------------------------------------------------------------------------


def decode_counter(words: Sequence[int], word_order: str = BIG) -> int:
    """An unsigned 16- or 32-bit counter from its registers. ``big``: the first register holds
    the high word (Modicon convention); ``little``: the first holds the low word."""
    if len(words) == 1:
        return words[0] & MAX_REGISTER_VALUE
    first, second = words[0] & MAX_REGISTER_VALUE, words[1] & MAX_REGISTER_VALUE
    high, low = (first, second) if word_order == BIG else (second, first)
    return (high << 16) | low


def encode_counter(value: int, words: int = 1, word_order: str = BIG) -> list[int]:
    """The registers a PLC holds for ``value`` (the counter wraps at its width)."""
    if words == 1:
        return [value & MAX_REGISTER_VALUE]
    value &= 0xFFFFFFFF
    high, low = value >> 16, value & MAX_REGISTER_VALUE
    return [high, low] if word_order == BIG else [low, high]


@dataclass(frozen=True, slots=True)
class Reading:
    """What one poll of a PLC says, decoded."""

    state_code: int
    good: int
    scrap: int | None


def _counter_from(values: Sequence[Sequence[int]], at: tuple[int, int], spec: CounterSpec) -> int:
    index, offset = at
    return decode_counter(values[index][offset : offset + spec.words], spec.word_order)


def decode_reading(plan: ReadPlan, regmap: RegisterMap, values: Sequence[Sequence[int]]) -> Reading:
    """Decode the answers to ``plan.spans`` (one register list per span)."""
    if len(values) != len(plan.spans):
        raise DecodeError(f"expected {len(plan.spans)} answers, got {len(values)}")
    for span, answer in zip(plan.spans, values, strict=True):
        if len(answer) < span.count:
            raise DecodeError(
                f"short answer: {len(answer)} of {span.count} {span.table} registers "
                f"from {span.address}"
            )
    index, offset = plan.state_at
    scrap = None
    if regmap.scrap_count is not None and plan.scrap_at is not None:
        scrap = _counter_from(values, plan.scrap_at, regmap.scrap_count)
    return Reading(
        state_code=values[index][offset] & MAX_REGISTER_VALUE,
        good=_counter_from(values, plan.good_at, regmap.good_count),
        scrap=scrap,
    )
