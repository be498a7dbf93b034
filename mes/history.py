"""A work order's history in words: plain audit rows in, display lines out (no ORM).

The audit trail keeps every row; a reader wants what happened. Three rules:

- Re-plans. The scheduler writes a ``reschedule`` row whenever the projected end moves or
  ``at_risk`` flips, often by minutes. A re-plan becomes a line only when it matters against
  what the last line said: the projected end moved by more than the tolerance (15 minutes),
  or the order became (or stopped being) at risk. Rows that change nothing that matters
  vanish; their reasons go with the next line shown. "Projected end moved from Tue 01 Dec
  14:00 to Wed 02 Dec 09:30 (19 h 30 min later)", why: "M-03 down; WO-1004 rush".
- PLC counts. A machine's PLC books each batch as a ``report_quantity`` row of the system
  actor ``plc:<machine>``. The rows of one machine on one operation add up while that
  operation's run lasts: until another row about the operation (a pause, a completion, a
  count by a person). Rows about other things in between (re-plans, checks) do not end it.
  One line, where the run began: "+182 good, +3 scrap from the PLC (M-01) between 10:00
  and 11:00".
- Everything else is one line per row: the action as a word ("Put on hold"), statuses by
  their labels ("Released → On hold"), changed fields by name, codes by their labels, and
  times in the product's one format (:func:`mes.formats.display_when`).

Words are translated at call time, in the active language; times are on the active time
zone's clock unless ``zone`` is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from shopfloor.choices import PLC_ACTOR_PREFIX

from .choices import (
    PAST_TENSE,
    ActorKind,
    MachineState,
    OperationStatus,
    Priority,
    WorkOrderStatus,
)
from .formats import display_quantity, display_time, display_when, local, parse_when
from .quality.choices import Disposition, NonconformanceStatus, Reaction, SignatureMeaning, Verdict

# A re-plan that moves the projected end by at most this much (from what the last line
# said) is not shown.
REPLAN_TOLERANCE = timedelta(minutes=15)
RESCHEDULE = "reschedule"
REPORT_QUANTITY = "report_quantity"
# What an empty value reads as (the dash the pages show).
NOTHING = "\N{EN DASH}"
# How many distinct reasons one re-plan line names.
MAX_REASONS = 4

# Statuses of every entity a work order's history speaks of, by code.
STATUS_LABELS: dict[str, Any] = {
    **dict(MachineState.choices),
    **dict(NonconformanceStatus.choices),
    **dict(OperationStatus.choices),
    **dict(WorkOrderStatus.choices),
}
# The keys of audit records' ``changes``, for people.
FIELD_LABELS: dict[str, Any] = {
    "quantity": gettext_lazy("Quantity"),
    "due_date": gettext_lazy("Due"),
    "priority": gettext_lazy("Priority"),
    "notes": gettext_lazy("Notes"),
    "product": gettext_lazy("Product"),
    "routing": gettext_lazy("Routing"),
    "machine": gettext_lazy("Machine"),
    "quantity_good": gettext_lazy("Good"),
    "quantity_scrap": gettext_lazy("Scrap"),
    "scrap_reason": gettext_lazy("Scrap reason"),
    "check": gettext_lazy("Check"),
    "sample": gettext_lazy("Sample"),
    "values": gettext_lazy("Values"),
    "verdict": gettext_lazy("Verdict"),
    "version": gettext_lazy("Version"),
    "operation": gettext_lazy("Operation"),
    "reaction": gettext_lazy("Reaction"),
    "disposition": gettext_lazy("Disposition"),
    "signature": gettext_lazy("Signature"),
    "name": gettext_lazy("Name"),
    "work_center": gettext_lazy("Work center"),
    "projected_end": gettext_lazy("Projected end"),
    "at_risk": gettext_lazy("At risk"),
}
# Changes whose values are codes of a vocabulary.
VALUE_LABELS: dict[str, dict[str, Any]] = {
    "priority": dict(Priority.choices),
    "verdict": dict(Verdict.choices),
    "reaction": dict(Reaction.choices),
    "disposition": dict(Disposition.choices),
    "signature": dict(SignatureMeaning.choices),
}
# Headlines for the actions whose participle does not stand alone ("given a check result").
HEADLINES: dict[str, Any] = {
    "record_check": gettext_lazy("Check recorded"),
    "correct_check": gettext_lazy("Check corrected"),
    "downtime_reason": gettext_lazy("Downtime reason given"),
    "freeze_limits": gettext_lazy("Control limits frozen"),
    "release_limits": gettext_lazy("Control limits from the data again"),
}
# Changes whose values are times (ISO 8601 strings in the audit record).
TIME_FIELDS = frozenset({"due_date", "projected_end"})


@dataclass(frozen=True)
class HistoryRow:
    """One audit record as plain data. ``actor_kind`` is an :class:`ActorKind`;
    ``changes`` maps a field to a value or to ``[before, after]``."""

    occurred_at: datetime
    actor_name: str
    actor_kind: str
    action: str
    entity_label: str
    from_state: str = ""
    to_state: str = ""
    changes: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    id: int = 0


@dataclass(frozen=True)
class HistoryLine:
    """One line of the history as people read it: when, about what, what happened, who,
    why, and the details. ``rows`` is how many audit rows it stands for; ``until`` the time
    of the last of them when there are several; ``kind`` is "replan", "plc" or "record"."""

    at: datetime
    subject: str
    text: str
    who: str
    reason: str = ""
    details: str = ""
    kind: str = "record"
    rows: int = 1
    until: datetime | None = None

    def __str__(self) -> str:
        return f"{self.text}: {self.reason}" if self.reason else self.text


def readable_history(
    rows: Iterable[HistoryRow],
    *,
    tolerance: timedelta = REPLAN_TOLERANCE,
    zone: tzinfo | None = None,
    now: datetime | None = None,
) -> list[HistoryLine]:
    """The lines of a history whose rows come oldest first (see the module's rules)."""
    words = _Words(zone, now)
    plan = _Plan(tolerance)
    out: list[HistoryLine | _PlcRun] = []
    running: dict[tuple[str, str], _PlcRun] = {}  # (PLC actor, operation) -> its open run
    for row in rows:
        if row.action == REPORT_QUANTITY and row.actor_kind == ActorKind.PLC:
            key = (row.actor_name, row.entity_label)
            if key in running:
                running[key].rows.append(row)
            else:
                running[key] = _PlcRun([row])
                out.append(running[key])
            continue
        # Anything else about an operation ends the runs of PLC counts on it.
        for key in [key for key in running if key[1] == row.entity_label]:
            del running[key]
        if row.action == RESCHEDULE:
            line = plan.step(row, words)
            if line is not None:
                out.append(line)
        else:
            out.append(_record_line(row, words))
    return [item.line(words) if isinstance(item, _PlcRun) else item for item in out]


# --- Re-plans ---------------------------------------------------------------------------------


def _pair(value: Any) -> tuple[Any, Any]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return value[0], value[1]
    return None, value


def _moved(before: datetime | None, after: datetime | None, tolerance: timedelta) -> bool:
    if before is None or after is None:
        return before is not after
    return abs(after - before) > tolerance


class _Plan:
    """The projection the history last showed, and the re-plans absorbed since."""

    def __init__(self, tolerance: timedelta) -> None:
        self.tolerance = tolerance
        self.started = False
        self.end: datetime | None = None
        self.at_risk = False
        self.absorbed: list[HistoryRow] = []

    def step(self, row: HistoryRow, words: _Words) -> HistoryLine | None:
        end_before, end_after = _pair(row.changes.get("projected_end"))
        risk_before, risk_after = _pair(row.changes.get("at_risk"))
        if not self.started:  # the first re-plan: against what it replaced
            self.started = True
            self.end, self.at_risk = _as_datetime(end_before), bool(risk_before)
        self.absorbed.append(row)
        end, at_risk = _as_datetime(end_after), bool(risk_after)
        moved = _moved(self.end, end, self.tolerance)
        flipped = at_risk != self.at_risk
        if not (moved or flipped):
            return None
        parts = []
        if moved:
            parts.append(words.projection_move(self.end, end))
        if flipped:
            if at_risk:
                parts.append(_("now at risk: it ends after the due date"))
            else:
                parts.append(_("no longer at risk"))
            if not moved:
                parts.append(_("projected end %(end)s") % {"end": words.when(end)})
        absorbed, self.absorbed = self.absorbed, []
        self.end, self.at_risk = end, at_risk
        return HistoryLine(
            at=row.occurred_at,
            subject=row.entity_label,
            text=capfirst("; ".join(str(p) for p in parts)),
            who=words.who(row),
            reason=_reasons(absorbed),
            details=(
                ngettext("%(n)d re-plan", "%(n)d re-plans", len(absorbed)) % {"n": len(absorbed)}
                if len(absorbed) > 1
                else ""
            ),
            kind="replan",
            rows=len(absorbed),
            until=None,
        )


def _reasons(rows: list[HistoryRow]) -> str:
    """The distinct reasons of several re-plans ("M-03 down; WO-1004 rush"), newest first."""
    seen: list[str] = []
    for row in reversed(rows):
        for part in row.reason.split(";"):
            part = part.strip()
            if part and part not in seen:
                seen.append(part)
    shown = "; ".join(seen[:MAX_REASONS])
    return shown + (" …" if len(seen) > MAX_REASONS else "")


def _as_datetime(value: Any) -> datetime | None:
    when = parse_when(value)
    return when if isinstance(when, datetime) else None


# --- PLC counts -------------------------------------------------------------------------------


def _delta(changes: Mapping[str, Any], key: str) -> Decimal:
    before, after = _pair(changes.get(key))
    try:
        return Decimal(str(after or 0)) - Decimal(str(before or 0))
    except (InvalidOperation, ValueError):
        return Decimal(0)


@dataclass
class _PlcRun:
    rows: list[HistoryRow]

    def line(self, words: _Words) -> HistoryLine:
        first, last = self.rows[0], self.rows[-1]
        good = sum((_delta(r.changes, "quantity_good") for r in self.rows), Decimal(0))
        scrap = sum((_delta(r.changes, "quantity_scrap") for r in self.rows), Decimal(0))
        values = {
            "amounts": words.amounts(good, scrap),
            "machine": _machine(first),
        }
        if len(self.rows) == 1:
            text = _("%(amounts)s from the PLC (%(machine)s)") % values
        else:
            text = _("%(amounts)s from the PLC (%(machine)s) %(span)s") % {
                **values,
                "span": words.span(first.occurred_at, last.occurred_at),
            }
        n = len(self.rows)
        return HistoryLine(
            at=first.occurred_at,
            subject=first.entity_label,
            text=text,
            who=words.who(first),
            reason="; ".join(dict.fromkeys(r.reason for r in self.rows if r.reason)),
            details=ngettext("%(n)d count", "%(n)d counts", n) % {"n": n} if n > 1 else "",
            kind="plc",
            rows=n,
            until=last.occurred_at if n > 1 else None,
        )


def _machine(row: HistoryRow) -> str:
    return row.actor_name.removeprefix(PLC_ACTOR_PREFIX)


# --- One row, one line ------------------------------------------------------------------------


def _record_line(row: HistoryRow, words: _Words) -> HistoryLine:
    verb = words.verb(row.action)
    changes = dict(row.changes)
    if row.action == REPORT_QUANTITY:
        good, scrap = _delta(changes, "quantity_good"), _delta(changes, "quantity_scrap")
        text = _("%(amounts)s reported") % {"amounts": words.amounts(good, scrap)}
        totals = words.totals(
            changes.pop("quantity_good", None), changes.pop("quantity_scrap", None)
        )
        details = "; ".join(part for part in (totals, words.changes(changes)) if part)
    elif row.action == "update":  # the changes are the news: "Priority: Normal → Rush"
        text = words.changes(changes) or verb
        details = ""
    elif row.from_state:
        text = _("%(verb)s: %(before)s → %(after)s") % {
            "verb": verb,
            "before": words.status(row.from_state),
            "after": words.status(row.to_state),
        }
        details = words.changes(changes)
    else:
        text = verb
        status = {"status": row.to_state} if row.to_state else {}
        details = words.changes({**status, **changes})
    return HistoryLine(
        at=row.occurred_at,
        subject=row.entity_label,
        text=text,
        who=words.who(row),
        reason=row.reason,
        details=details,
    )


class _Words:
    """Codes to words, times to the product's format, on one clock."""

    def __init__(self, zone: tzinfo | None, now: datetime | None) -> None:
        self.zone, self.now = zone, now

    def when(self, value: Any) -> str:
        return display_when(value, zone=self.zone, now=self.now) if value is not None else NOTHING

    def span(self, start: datetime, end: datetime) -> str:
        """ "between 10:00 and 11:00" on one day, else with both dates."""
        same_day = local(start, self.zone).date() == local(end, self.zone).date()
        return _("between %(start)s and %(end)s") % {
            "start": display_time(start, zone=self.zone) if same_day else self.when(start),
            "end": display_time(end, zone=self.zone) if same_day else self.when(end),
        }

    def projection_move(self, before: datetime | None, after: datetime | None) -> str:
        if before is None:
            return _("projected end set to %(end)s") % {"end": self.when(after)}
        if after is None:
            return _("projected end dropped (%(end)s before): not planned") % {
                "end": self.when(before)
            }
        template = (
            _("projected end moved from %(before)s to %(after)s (%(delta)s later)")
            if after > before
            else _("projected end moved from %(before)s to %(after)s (%(delta)s earlier)")
        )
        return template % {
            "before": self.when(before),
            "after": self.when(after),
            "delta": duration(abs(after - before)),
        }

    def amounts(self, good: Decimal, scrap: Decimal) -> str:
        """ "+182 good, +3 scrap" (a side that did not change left out)."""
        parts = []
        if good or not scrap:
            parts.append(_("%(n)s good") % {"n": _signed(good)})
        if scrap:
            parts.append(_("%(n)s scrap") % {"n": _signed(scrap)})
        return ", ".join(parts)

    def verb(self, action: str) -> str:
        word = HEADLINES.get(action) or PAST_TENSE.get(action) or action.replace("_", " ")
        return capfirst(str(word))

    def status(self, code: str) -> str:
        if not code:
            return NOTHING
        return str(STATUS_LABELS.get(code) or capfirst(code.replace("_", " ")))

    def who(self, row: HistoryRow) -> str:
        if row.actor_kind == ActorKind.PLC:
            return _("PLC %(machine)s") % {"machine": _machine(row)}
        if row.actor_kind == ActorKind.SYSTEM:
            name = row.actor_name
            if name == "scheduler":
                return _("Scheduler")
            for prefix in ("api:", "erp:"):
                if name.startswith(prefix):
                    return _("ERP (%(client)s)") % {"client": name.removeprefix(prefix)}
        return row.actor_name

    def value(self, key: str, value: Any) -> str:
        if value is None or value == "":
            return NOTHING
        if isinstance(value, bool):
            return _("yes") if value else _("no")
        if key == "status":
            return self.status(str(value))
        if key in TIME_FIELDS:
            return self.when(value)
        labels = VALUE_LABELS.get(key)
        if labels is not None and str(value) in labels:
            return str(labels[str(value)])
        return str(value)

    def changes(self, changes: Mapping[str, Any]) -> str:
        """ "Priority: Normal → Rush; Machine: M-01" """
        parts = []
        for key, value in changes.items():
            label = str(FIELD_LABELS.get(key) or capfirst(key.replace("_", " ")))
            if key == "status":
                label = _("Status")
            if isinstance(value, list) and len(value) == 2:
                parts.append(f"{label}: {self.value(key, value[0])} → {self.value(key, value[1])}")
            elif value is not None:
                parts.append(f"{label}: {self.value(key, value)}")
        return "; ".join(parts)

    def totals(self, good: Any, scrap: Any) -> str:
        """ "now 40 good, 2 scrap", from ``[before, after]`` pairs (either may be None)."""
        parts = []
        if good is not None:
            parts.append(_("%(n)s good") % {"n": _pair(good)[1]})
        if scrap is not None:
            parts.append(_("%(n)s scrap") % {"n": _pair(scrap)[1]})
        return _("now %(totals)s") % {"totals": ", ".join(parts)} if parts else ""


def _signed(n: Decimal) -> str:
    return ("+" if n >= 0 else "-") + display_quantity(abs(n))


def duration(span: timedelta) -> str:
    """ "19 h 30 min", "2 days 3 h", "45 min" (to the minute)."""
    minutes = round(span.total_seconds() / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(ngettext("%(n)d day", "%(n)d days", days) % {"n": days})
    if hours:
        parts.append(_("%(n)d h") % {"n": hours})
    if mins or not parts:
        parts.append(_("%(n)d min") % {"n": mins})
    return " ".join(parts)
