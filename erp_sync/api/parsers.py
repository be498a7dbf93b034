"""The API's one parser: JSON, strictly. What no field of the contract can hold is refused
here, once, for every endpoint, before a serializer or the database sees it:

- nesting deeper than :data:`MAX_DEPTH` (the contract's deepest body is five levels; a
  body 100,000 levels deep would exhaust the parser's stack);
- ``NaN``, ``Infinity`` and numbers beyond a float (``1e999999999``), which are not JSON
  numbers a client can mean;
- NUL characters in a string or a key (PostgreSQL cannot store them in text), and lone
  UTF-16 surrogates (``"\\ud800"``: no UTF-8 text can hold one, so neither a database nor
  the answer could).

Each refusal is a 400 ``invalid`` naming the field (dotted path, as the exception handler
names nested fields)."""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser, get_encoding

MAX_DEPTH = 32
NUL_MESSAGE = "Null characters are not allowed."  # as DRF's CharField says it
NOT_FINITE = "Not a finite JSON number (NaN, Infinity or beyond 1.8e308)."
SURROGATE_MESSAGE = "Not valid Unicode text (a lone surrogate)."


def has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def safe_name(name: str) -> str:
    """A field name fit for the error body (lone surrogates escaped)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


class NonFinite:
    """``NaN``, ``Infinity`` or ``-Infinity`` as written in the body (not JSON, but
    Python's parser reads them): kept as a marker so the refusal can name the field."""

    def __init__(self, text: str) -> None:
        self.text = text


def refusals(data: Any) -> dict[str, list[str]]:
    """What no field may hold, by dotted path; walks the parsed body without recursion and
    stops at :data:`MAX_DEPTH` (raising :class:`ParseError`)."""
    errors: dict[str, list[str]] = {}
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON nested more than {MAX_DEPTH} levels deep.")
        if isinstance(value, dict):
            for key, item in value.items():
                name = safe_name(f"{path}.{key}" if path else key)
                if "\x00" in key:
                    errors.setdefault(name, []).append(NUL_MESSAGE)
                if has_surrogate(key):
                    errors.setdefault(name, []).append(SURROGATE_MESSAGE)
                stack.append((item, name, depth + 1))
        elif isinstance(value, list):
            stack.extend(
                (item, f"{path}.{index}" if path else str(index), depth + 1)
                for index, item in enumerate(value)
            )
        elif isinstance(value, str):
            if "\x00" in value:
                errors.setdefault(path or "non_field_errors", []).append(NUL_MESSAGE)
            if has_surrogate(value):
                errors.setdefault(path or "non_field_errors", []).append(SURROGATE_MESSAGE)
        elif isinstance(value, NonFinite) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            errors.setdefault(path or "non_field_errors", []).append(NOT_FINITE)
    return errors


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})  # text codecs only (no bz2_codec)
        try:
            data = json.load(codecs.getreader(encoding)(stream), parse_constant=NonFinite)
        except RecursionError:
            raise ParseError(f"JSON nested more than {MAX_DEPTH} levels deep.") from None
        except ValueError as exc:  # also: not UTF-8, an integer of more than 4300 digits
            raise ParseError(f"JSON parse error - {exc}") from None
        errors = refusals(data)
        if errors:
            raise ValidationError(errors)
        return data
