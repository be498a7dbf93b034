"""Plain-data formatting shared by the API, the outbox and the screens (no ORM)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal


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
