"""Plain-data formatting shared by the API, the outbox and the screens (no ORM)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal

from django.utils import dateformat, timezone


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as the ERP contract wants; None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def quantity(value: Decimal | int | float) -> int | float:
    """A JSON number: integral quantities as int (500, not 500.0), others as float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def display_quantity(value: Decimal) -> str:
    """For screens: no trailing zeros (500, 12.5)."""
    text = format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)
    return text


# --- Dates and times on screens ----------------------------------------------------------------
# One format across the product, on the plant's clock (the active time zone: settings.TIME_ZONE
# unless a view or a ``{% timezone %}`` block chose the site's): "Tue 01 Dec 14:00", with the
# year when it is not this year ("Mon 30 Dec 2024 14:00"). Day and month names follow the
# request's language. Templates use ``{{ value|when }}`` (``mes_format``).
WHEN = "D d M H:i"
WHEN_OTHER_YEAR = "D d M Y H:i"
DAY = "D d M"
DAY_OTHER_YEAR = "D d M Y"
TIME = "H:i"


def parse_when(value: object) -> datetime | date | None:
    """A datetime or date as is; an ISO 8601 string (as audit records keep them) parsed;
    anything else None."""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def local(value: datetime, zone: tzinfo | None = None) -> datetime:
    """On the plant's clock (a naive value is taken as already there)."""
    return value if timezone.is_naive(value) else timezone.localtime(value, zone)


def display_when(value: object, *, zone: tzinfo | None = None, now: datetime | None = None) -> str:
    """ "Tue 01 Dec 14:00" (a date: "Tue 01 Dec"); the year added when it is not this year;
    None and "" give "", a string that is no date comes back as it is."""
    when = parse_when(value)
    if when is None:
        return "" if value is None else str(value)
    this_year = local(now or timezone.now(), zone).year
    if isinstance(when, datetime):
        when = local(when, zone)
        return dateformat.format(when, WHEN if when.year == this_year else WHEN_OTHER_YEAR)
    return dateformat.format(when, DAY if when.year == this_year else DAY_OTHER_YEAR)


def display_time(value: datetime, *, zone: tzinfo | None = None) -> str:
    """ "14:00", for a second time on the same day ("between 10:00 and 11:00")."""
    return dateformat.format(local(value, zone), TIME)


# What people type and scanners send: ASCII digits only. (str.isdigit() and int() also take
# "²", "١٢" or "1_000", which either fail further on or mean something nobody typed.)
WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")  # fits a 64-bit column
DECIMAL_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_int(raw: str | None) -> int | None:
    """A whole number from a form, a query string or a scan: ASCII digits, at most 18 of
    them, surrounding whitespace ignored; None for anything else."""
    raw = (raw or "").strip()
    return int(raw) if WHOLE_NUMBER.fullmatch(raw) else None


def parse_decimal(raw: str | None) -> Decimal | None:
    """A decimal number as typed on a screen (``12``, ``-1.5``, ``.5``; a comma for the
    point): ASCII digits, no exponent, no NaN or infinity; None for anything else. Bounds
    and decimal places are for the caller (the services) to check."""
    raw = (raw or "").strip().replace(",", ".")
    return Decimal(raw) if DECIMAL_NUMBER.fullmatch(raw) else None


def row_id(raw: str | None) -> int:
    """A row id from a form or query string (0, which names nothing, when it is not one: a
    forged or mangled value never reaches the database as an error)."""
    return parse_int(raw) or 0
