"""Keyset (cursor) pagination: stable under concurrent writes, constant cost per page.

The cursor is an opaque token holding the sort key of the last row served. Pages are
``{"results": [...], "next": "<absolute url>" | null}``.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


def encode_cursor(values: dict) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> dict:
    try:
        padded = token + "=" * (-len(token) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, dict):
            raise ValueError
        return values
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError):
        raise ValidationError({"cursor": ["Not a cursor this API handed out."]}) from None


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
        after = decode_cursor(cursor).get("k")
        if not isinstance(after, str):
            raise ValidationError({"cursor": ["Not a cursor this API handed out."]})
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
    tie_type: type,
    keys: tuple[str, str],
) -> tuple[list, str | None]:
    """Rows ordered by (a time, a unique tie-breaker); the cursor holds both of the last
    row served, under ``keys``."""
    time_key, tie_key = keys
    if cursor:
        values = decode_cursor(cursor)
        raw = values.get(time_key)
        when = parse_datetime(raw) if isinstance(raw, str) else None
        tie = values.get(tie_key)
        if not isinstance(when, datetime) or not isinstance(tie, tie_type):
            raise ValidationError({"cursor": ["Not a cursor this API handed out."]})
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
        tie_type=str,
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
        tie_type=int,
        keys=("s", "i"),
    )
