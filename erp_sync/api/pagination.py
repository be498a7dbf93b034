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


def page_by_change(
    queryset: QuerySet, request: Request, page_size: int, cursor: str | None
) -> tuple[list, str | None]:
    """The changes feed: ordered by (updated_at, number). ``updated_at`` comes from a
    commit-ordered clock (mes.clock), so a row committed after this page was read always
    sorts after its last row and the walk skips nothing."""
    if cursor:
        values = decode_cursor(cursor)
        when = parse_datetime(values.get("u", "")) if isinstance(values.get("u"), str) else None
        number = values.get("n")
        if not isinstance(when, datetime) or not isinstance(number, str):
            raise ValidationError({"cursor": ["Not a cursor this API handed out."]})
        queryset = queryset.filter(Q(updated_at__gt=when) | Q(updated_at=when, number__gt=number))
    rows = list(queryset.order_by("updated_at", "number")[: page_size + 1])
    more = len(rows) > page_size
    rows = rows[:page_size]
    token = None
    if more:
        last = rows[-1]
        token = encode_cursor({"u": last.updated_at.isoformat(), "n": last.number})
    return rows, next_url(request, token)
