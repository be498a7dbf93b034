"""Set-based writes for the services that change many rows at once (the live schedule's
writer, the booking of PLC counts): one statement per table instead of one per row.

On PostgreSQL each statement takes one array per column (``UPDATE ... FROM unnest(...)``,
``INSERT ... SELECT * FROM unnest(...)``), bound on the server in binary. Django's own
``bulk_update`` builds a ``CASE WHEN id = ... THEN ...`` that grows with the rows (the
database compares every row with every branch), and its client-side binding has every value
of a text or JSON array escaped in Python, and every placeholder of a long statement parsed
there: for a pass of a thousand rows that costs more than the statements themselves.
In-process SQLite runs one prepared statement per row about as fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.db import connection, models
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models.fields import AutoFieldMixin


@contextmanager
def server_bound_cursor() -> Iterator[CursorWrapper]:
    """A cursor on the current connection (and transaction) that binds parameters on the
    server, wrapped like Django's own so that query logging and execute wrappers see it."""
    import psycopg

    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    wrapper = CursorDebugWrapper if connection.queries_logged else CursorWrapper
    try:
        yield wrapper(raw, connection)
    finally:
        raw.close()


def array_type(field: models.Field) -> str:
    # Without a length (varchar[] rather than varchar(16)[]), as Django's own UNNEST insert.
    return field.db_type(connection).split("(")[0] + "[]"


def columns_of(rows: list[list[Any]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def prepared(field: models.Field, value: Any) -> Any:
    """``value`` as the database takes it for ``field``, of one Python type per column (a
    binary array cannot mix ``int`` and ``Decimal``)."""
    value = field.get_db_prep_save(value, connection)
    if value is None:
        return None
    kind = field.get_internal_type()
    if kind == "DecimalField" and not isinstance(value, Decimal):
        return Decimal(value)
    if kind == "FloatField":
        return float(value)
    return value


# Types psycopg adapts as they are (aware datetimes, text, numbers, booleans, UUIDs, keys).
_NATIVE = {
    *("DateTimeField", "CharField", "TextField", "BooleanField", "UUIDField"),
    *("IntegerField", "PositiveIntegerField", "BigIntegerField", "BigAutoField"),
    *("ForeignKey", "OneToOneField"),
}


def _preparer(field: models.Field) -> Callable[[Any], Any]:
    """:func:`prepared` for one column; on PostgreSQL without Django's per-value conversions
    for the types the driver adapts itself (a pass converts tens of thousands of values)."""
    kind = field.get_internal_type()
    if connection.vendor != "postgresql" or kind not in (*_NATIVE, "DecimalField"):
        return lambda value: prepared(field, value)
    if kind == "DecimalField":
        return lambda value: (
            value if value is None or isinstance(value, Decimal) else Decimal(value)
        )
    return lambda value: value


def update_rows(model: type[models.Model], objects: Sequence[models.Model], fields: list[str]):
    """Write ``fields`` of ``objects`` (saved rows, by primary key) in one statement."""
    if not objects:
        return
    meta = model._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    preparers = [(field.attname, _preparer(field)) for field in columns]
    rows = [
        [obj.pk] + [prepare(getattr(obj, attname)) for attname, prepare in preparers]
        for obj in objects
    ]
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%b::{array_type(f)}" for f in [pk, *columns])
        names = ", ".join(quote(f.column) for f in [pk, *columns])
        assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in columns)
        with server_bound_cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} FROM unnest({arrays}) AS v({names}) "
                f"WHERE t.{quote(pk.column)} = v.{quote(pk.column)}",
                columns_of(rows, len(columns) + 1),
            )
        return
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in columns)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {assignments} WHERE {quote(pk.column)} = %s",
            [[*row[1:], row[0]] for row in rows],
        )


def insert_rows(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    """``bulk_create`` of new rows in the given order, setting their primary keys."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects)
        return
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [
        f for f in meta.concrete_fields if not (f.primary_key and isinstance(f, AutoFieldMixin))
    ]
    preparers = [(f, _preparer(f)) for f in fields]
    rows = [[prepare(f.pre_save(obj, add=True)) for f, prepare in preparers] for obj in objects]
    with server_bound_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"SELECT * FROM unnest({', '.join(f'%b::{array_type(f)}' for f in fields)}) "
            f"RETURNING {quote(meta.pk.column)}",
            columns_of(rows, len(fields)),
        )
        for obj, (pk,) in zip(objects, cursor.fetchall(), strict=True):
            obj.pk = pk
            obj._state.adding, obj._state.db = False, connection.alias
