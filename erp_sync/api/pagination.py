"""Keyset (cursor) pagination: stable under concurrent writes, constant cost per page.

The cursor is an opaque token holding the sort key of the last row served. Pages are
``{"results": [...], "next": "<absolute url>" | null}``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from erp_sync.api.parsers import has_surrogate


def encode_cursor(values: dict) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def not_a_cursor() -> ValidationError:
    return ValidationError({"cursor": ["Not a cursor this API handed out."]})


def decode_cursor(token: str) -> dict:
    try:
        padded = token + "=" * (-len(token) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, dict):
            raise ValueError
        return values
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise not_a_cursor() from None


# A cursor is only base64: anyone can forge one. Each value is checked to be one this API
# could have written before it reaches a query (where a NUL byte, an integer beyond 64 bits
# or an impossible date would be a database error, not a 400).


def cursor_text(value: object) -> str:
    if not isinstance(value, str) or "\x00" in value or len(value) > 200:
        raise not_a_cursor()
    if has_surrogate(value):  # json.loads reads "\ud800" into a string no database takes
        raise not_a_cursor()
    return value


def cursor_int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise not_a_cursor()
    return value


def cursor_time(value: object) -> datetime:
    """An aware ISO 8601 time that exists (not 2026-02-30) and has a UTC equivalent."""
    try:
        when = parse_datetime(value) if isinstance(value, str) else None
        if when is None or when.utcoffset() is None:
            raise ValueError
        when.astimezone(UTC)  # year 1 or 9999 with an offset: beyond the calendar
    except (ValueError, OverflowError):
        raise not_a_cursor() from None
    return when


def next_url(request: Request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = request.query_params.copy()
    query["cursor"] = cursor
    return request.build_absolute_uri(request.path) + "?" + query.urlencode()


def page_by_code(
    queryset: QuerySet, request: Request, page_size: int, cursor: str | None, field: str = "code"
) -> tuple[list, str | None]:
    """Rows ordered by a unique text key."""
    if cursor:
        after = cursor_text(decode_cursor(cursor).get("k"))
        queryset = queryset.filter(**{f"{field}__gt": after})
    rows = list(queryset.order_by(field)[: page_size + 1])
    more = len(rows) > page_size
    rows = rows[:page_size]
    token = encode_cursor({"k": getattr(rows[-1], field)}) if more else None
    return rows, next_url(request, token)


def _page_by_time(
    queryset: QuerySet,
    request: Request,
    page_size: int,
    cursor: str | None,
    *,
    time_field: str,
    tie_field: str,
    check_tie: Callable[[object], Any],
    keys: tuple[str, str],
) -> tuple[list, str | None]:
    """Rows ordered by (a time, a unique tie-breaker); the cursor holds both of the last
    row served, under ``keys``; ``check_tie`` checks the tie-breaker's value."""
    time_key, tie_key = keys
    if cursor:
        values = decode_cursor(cursor)
        when = cursor_time(values.get(time_key))
        tie = check_tie(values.get(tie_key))
        queryset = queryset.filter(
            Q(**{f"{time_field}__gt": when}) | Q(**{time_field: when, f"{tie_field}__gt": tie})
        )
    rows = list(queryset.order_by(time_field, tie_field)[: page_size + 1])
    more = len(rows) > page_size
    rows = rows[:page_size]
    token = None
    if more:
        last = rows[-1]
        token = encode_cursor(
            {time_key: getattr(last, time_field).isoformat(), tie_key: getattr(last, tie_field)}
        )
    return rows, next_url(request, token)


def page_by_change(
    queryset: QuerySet, request: Request, page_size: int, cursor: str | None
) -> tuple[list, str | None]:
    """The changes feed: ordered by (updated_at, number). ``updated_at`` comes from a
    commit-ordered clock (mes.clock), so a row committed after this page was read always
    sorts after its last row and the walk skips nothing."""
    return _page_by_time(
        queryset,
        request,
        page_size,
        cursor,
        time_field="updated_at",
        tie_field="number",
        check_tie=cursor_text,
        keys=("u", "n"),
    )


def page_by_start(
    queryset: QuerySet, request: Request, page_size: int, cursor: str | None
) -> tuple[list, str | None]:
    """Rows ordered by (started_at, id)."""
    return _page_by_time(
        queryset,
        request,
        page_size,
        cursor,
        time_field="started_at",
        tie_field="id",
        check_tie=cursor_int,
        keys=("s", "i"),
    )
