"""The JSON line format of every process (web, gunicorn's own lines, workers, beat): one
definition, imported by the settings and by gunicorn's configuration, so it imports
nothing of Django."""

from __future__ import annotations


def json_formatter(*extra_fields: str) -> dict:
    """A ``logging.config`` formatter: python-json-logger's, with ``time`` (ISO 8601, UTC),
    ``level``, ``logger``, ``message`` and the given record attributes."""
    fields = " ".join(f"%({name})s" for name in ("levelname", "name", "message", *extra_fields))
    return {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": fields,
        "rename_fields": {"levelname": "level", "name": "logger"},
        "timestamp": "time",
    }
