"""Filling a bench database fast with model instances built in Python.

The instances are made with the models' constructors (so a column added later gets its
default, and a bench does not rot by listing columns in SQL) and carry their primary keys
(so children can point at parents before anything is written). :func:`insert` writes them
with COPY on PostgreSQL and one multi-row ``executemany`` elsewhere, passing the values
the drivers take as they are and preparing the others as a save would; :func:`next_ids`
hands out the keys and :func:`reset_sequences` moves the id sequences past them afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# Values of these fields go to the driver as they are (psycopg and Django's sqlite3
# adapters take them); the others are prepared by the field, as a save would.
PLAIN = {
    "AutoField",
    "BigAutoField",
    "BigIntegerField",
    "BooleanField",
    "CharField",
    "DecimalField",
    "ForeignKey",
    "IntegerField",
    "OneToOneField",
    "PositiveIntegerField",
    "PositiveSmallIntegerField",
    "SmallIntegerField",
    "TextField",
}


def next_ids(model, count: int) -> range:
    """``count`` primary keys after the largest one in the table."""
    from django.db.models import Max

    first = (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1
    return range(first, first + count)


def _preparers(fields, connection) -> list[tuple[int, Callable]]:
    out = []
    for i, field in enumerate(fields):
        kind = field.get_internal_type()
        if kind in PLAIN or (kind == "DateTimeField" and connection.vendor == "postgresql"):
            continue
        if kind == "DateTimeField":  # SQLite: naive UTC text, as Django stores it
            out.append((i, connection.ops.adapt_datetimefield_value))
        else:
            out.append((i, lambda value, field=field: field.get_db_prep_save(value, connection)))
    return out


def insert(objs: Sequence) -> None:
    """Insert model instances (all of one model, primary keys set)."""
    if not objs:
        return
    from django.db import connection, transaction

    model = type(objs[0])
    fields = model._meta.concrete_fields
    prepare = _preparers(fields, connection)
    names = [f.attname for f in fields]

    def rows():
        for obj in objs:
            row = [getattr(obj, name) for name in names]
            for i, prepared in prepare:
                row[i] = prepared(row[i])
            yield row

    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows():
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(fields))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows())


def reset_sequences(*models) -> None:
    """After rows were inserted with their ids: the next ``save()`` continues after them."""
    from django.core.management.color import no_style
    from django.db import connection

    statements = connection.ops.sequence_reset_sql(no_style(), list(models))
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
