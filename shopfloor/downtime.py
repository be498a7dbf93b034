"""Downtime: a machine's stops, why it stopped, and machines declared down by hand.

- **Opening.** A machine with a running operation that goes down (from its PLC) opens a
  downtime record from that moment; one that stands idle for at least
  ``MES_PLC_IDLE_DOWNTIME_SECONDS`` opens one from the start of the idle period
  (:func:`idle_too_long` is the rule; the poller asks :func:`open_idle_downtimes`). A
  machine has at most one open record.
- **Closing.** The record closes when the machine runs again.
- **Reasons.** A reason is picked from a configurable two-level tree
  (:class:`~shopfloor.models.DowntimeReason`: categories and their reasons, planned or
  unplanned) and/or given in words. The terminal asks for it, the admin may correct it;
  every answer is written to the machine's audit trail.
- **Declarations.** A supervisor (signed-in page) or an operator (terminal) declares a
  machine *down* or *blocked* with a reason and, if known, when it is expected back
  (:func:`declare_machine_down`), and back up again (:func:`declare_machine_up`). Machines
  without a PLC get their state only this way. A declaration sets the machine's state to
  down through :func:`mes.services.set_machine_state` (which keeps the expected return in
  ``Machine.expected_back_at``; the live schedule plans the machine from then, as it does
  after a PLC stop), appends a state event and is the machine's open downtime record, of
  cause ``manual`` or ``blocked`` (a record the PLC already opened takes the declaration).
  Declaring a declared machine again changes its kind, reason or expected return.
  Two people declaring at once: the machine row is locked, the second waits and, when it
  says what it saw (``seen``), is refused with who did what meanwhile.
- **Declarations and the PLC: the latest word wins.** The poller writes a PLC's state only
  when the PLC's state changes (or when the poller restarts and reads it afresh). A PLC
  machine declared down stays down until it is declared up or until its PLC reports
  another state: running, idle or setup end the declaration (running ends every stop);
  "offline" or "unknown" (no answer from the PLC) do not. Declared up, a PLC machine takes
  the last state its PLC reported (unless that was down), others become idle.

Writes run inside the caller's transaction or in their own; reads serve the terminal and
the admin. The records and the reason tree are in :mod:`shopfloor.models`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final, Literal, Protocol

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from mes import services as mes_services
from mes.choices import EntityType, MachineState, OperationStatus
from mes.errors import Conflict, StaleObject, ValidationFailed
from mes.formats import iso_utc
from mes.models import Machine, Operation, WorkCenter

from .choices import (
    DECLARE_ACTION,
    DECLARE_UP_ACTION,
    DECLARED_CAUSE,
    DECLARED_CAUSES,
    PLC_ACTOR_PREFIX,
    DeclaredKind,
    DowntimeCause,
)
from .models import DowntimeReason, DowntimeRecord, MachineConnection, MachineStateEvent

MAX_REASON = 500
# How far ahead a machine may be expected back (beyond that, it is out of service: make it
# inactive); also keeps absurd dates (year 9999) out of the schedule's arithmetic.
MAX_EXPECTED_AHEAD = timedelta(days=366)
# States a PLC reports that end a declaration (the latest word wins); running also ends
# every other stop. Offline and unknown are no word from the machine: they end nothing.
ENDS_DECLARATION = frozenset({MachineState.RUNNING, MachineState.IDLE, MachineState.SETUP})


class StateChange(Protocol):
    """A machine's new state and since when (the PLC services' ``StateReading``)."""

    machine_id: int
    state: str
    at: datetime


# --- Opening and closing ------------------------------------------------------------------------


def idle_too_long(state: str, since: datetime, now: datetime, threshold_seconds: float) -> bool:
    """Whether a machine idle since ``since`` has stood long enough at ``now`` for a downtime
    (when an operation is running on it: :func:`open_idle_downtimes` checks that)."""
    return state == MachineState.IDLE and (now - since).total_seconds() >= threshold_seconds


def _running_operations(machine_ids: Iterable[int]) -> dict[int, int]:
    return dict(
        Operation.objects.filter(
            machine_id__in=list(machine_ids), status=OperationStatus.RUNNING
        ).values_list("machine_id", "id")
    )


def update_downtimes(changed: Sequence[StateChange]) -> None:
    """Follow machine state changes (in the transaction that records them): close the open
    record of a machine that runs again, and the declaration of a machine whose PLC reports
    it idle or in setup (the latest word wins); open a record for a machine that went down
    while an operation ran on it."""
    ending = {r.machine_id: r for r in changed if r.state in ENDS_DECLARATION}
    if ending:
        records = [
            record
            for record in DowntimeRecord.objects.select_for_update().filter(
                machine_id__in=ending, ended_at__isnull=True
            )
            if ending[record.machine_id].state == MachineState.RUNNING or record.is_declared
        ]
        for record in records:
            record.ended_at = max(record.started_at, ending[record.machine_id].at)
        if records:
            DowntimeRecord.objects.bulk_update(records, ["ended_at"])
    down = {r.machine_id: r for r in changed if r.state == MachineState.DOWN}
    if down:
        _open_downtimes({m: (r.at, DowntimeCause.DOWN) for m, r in down.items()})


def _open_downtimes(stops: dict[int, tuple[datetime, str]]) -> list[DowntimeRecord]:
    """Open a downtime record for each machine that has a running operation and no open
    record yet."""
    running = _running_operations(stops)
    already = set(
        DowntimeRecord.objects.filter(machine_id__in=running, ended_at__isnull=True).values_list(
            "machine_id", flat=True
        )
    )
    return DowntimeRecord.objects.bulk_create(
        DowntimeRecord(
            machine_id=machine_id,
            operation_id=running[machine_id],
            cause=stops[machine_id][1],
            started_at=stops[machine_id][0],
        )
        for machine_id in sorted(running)
        if machine_id not in already
    )


def open_idle_downtimes(candidates: Sequence[tuple[int, datetime]]) -> list[DowntimeRecord]:
    """Machines idle since the given time beyond the threshold: open a downtime record, from
    the start of the idle period, for those still idle since then with an operation running."""
    if not candidates:
        return []
    since = dict(candidates)
    with transaction.atomic():
        still_idle = {
            pk: state_since
            for pk, state_since in Machine.objects.filter(
                pk__in=since, state=MachineState.IDLE
            ).values_list("pk", "state_since")
        }
        return _open_downtimes({pk: (at, DowntimeCause.IDLE) for pk, at in still_idle.items()})


# --- Reasons ------------------------------------------------------------------------------------


def _reason(code: str, note: str, *, missing: str) -> tuple[DowntimeReason | None, str]:
    """A pick from the reason tree (an active reason, not a category) and/or words: the
    pick and the text to store. ``missing`` is the refusal when neither is given."""
    code, note = (code or "").strip(), (note or "").strip()
    choice = None
    if code:
        choice = (
            DowntimeReason.objects.filter(code=code, active=True, parent__isnull=False)
            .select_related("parent")
            .first()
        )
        if choice is None:
            raise ValidationFailed.field(
                "code",
                gettext("“%(code)s” is not an active downtime reason.") % {"code": code[:40]},
            )
    elif not note:
        raise ValidationFailed.field("reason", missing)
    text = note
    if choice is not None:
        # Stored in English like every reason in the audit trail; read by everyone.
        kind = "planned" if choice.planned else "unplanned"
        text = f"{choice.path} ({kind})" + (f": {note}" if note else "")
    if len(text) > MAX_REASON:
        raise ValidationFailed.field(
            "reason", gettext("At most %(n)s characters.") % {"n": MAX_REASON}
        )
    return choice, text


def set_downtime_reason(
    record: DowntimeRecord,
    *,
    actor: AbstractBaseUser,
    code: str = "",
    note: str = "",
    at: datetime | None = None,
) -> DowntimeRecord:
    """The reason for a stop: a pick from the reason tree (``code`` of an active reason, not
    a category) and/or words (``note``). Asked by the terminal, may be corrected later from
    the admin; every answer is in the machine's audit trail."""
    choice, text = _reason(code, note, missing=gettext("Say why the machine stopped."))
    at = at or timezone.now()
    with transaction.atomic():
        locked = (
            DowntimeRecord.objects.select_for_update().select_related("machine").get(pk=record.pk)
        )
        before = locked.reason
        locked.reason_choice, locked.reason = choice, text
        locked.reason_by, locked.reason_at = actor, at
        locked.save(update_fields=["reason_choice", "reason", "reason_by", "reason_at"])
        mes_services.write_audit(
            mes_services.Actor.of(actor),
            entity_type=EntityType.MACHINE,
            entity_id=locked.machine_id,
            entity_label=locked.machine.code,
            work_order=None,
            action="downtime_reason",
            at=at,
            changes={"downtime": locked.pk, "reason": [before, text]},
            reason=text,
        )
        return locked


def reason_tree() -> list[tuple[DowntimeReason, list[DowntimeReason]]]:
    """The active categories, each with its active reasons, in their configured order."""
    reasons = list(DowntimeReason.objects.filter(active=True))
    children: dict[int, list[DowntimeReason]] = {}
    for reason in reasons:
        if reason.parent_id:
            children.setdefault(reason.parent_id, []).append(reason)
    return [(r, children.get(r.pk, [])) for r in reasons if r.parent_id is None]


# --- Declarations by hand -----------------------------------------------------------------------


class _Any(enum.Enum):
    ANY = "any"


# ``seen`` not given: act on whatever is declared now (scripts, tests, the API).
ANY: Final = _Any.ANY
Seen = int | Literal[_Any.ANY] | None


def _moment(at: datetime | None) -> datetime:
    if at is None:
        return timezone.now()
    if timezone.is_naive(at):
        raise ValidationFailed.field("at", "Times must carry a time zone.")
    return at


def _check_expected_back(expected_back: datetime | None, at: datetime) -> None:
    if expected_back is None:
        return
    if timezone.is_naive(expected_back):
        raise ValidationFailed.field("expected_back", "Times must carry a time zone.")
    if expected_back <= at:
        raise ValidationFailed.field(
            "expected_back", gettext("The expected return must be in the future.")
        )
    if expected_back > at + MAX_EXPECTED_AHEAD:
        raise ValidationFailed.field(
            "expected_back",
            gettext(
                "The expected return is more than a year ahead; make the machine inactive instead."
            ),
        )


def _lock_declaration(machine: Machine) -> tuple[Machine, DowntimeRecord | None]:
    """Lock the machine, then its open downtime record (the lock order of
    :func:`update_downtimes`, which runs after ``set_machine_state`` locked the machine)."""
    locked = Machine.objects.select_for_update().get(pk=machine.pk)
    record = (
        DowntimeRecord.objects.select_for_update()
        .filter(machine=locked, ended_at__isnull=True)
        .first()
    )
    return locked, record


def _check_seen(machine: Machine, declared: DowntimeRecord | None, seen: Seen) -> None:
    """The caller acted on the screen it saw (the declaration it showed, or None for none);
    when someone else changed that meanwhile, say who and what, change nothing."""
    if seen is ANY or seen == (declared.pk if declared else None):
        return
    last = mes_services.describe_last_change(EntityType.MACHINE, machine.pk, machine.code)
    raise StaleObject(f"{last}. " + gettext("Nothing was changed; look again."))


def _local(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}"


def declared_words(kind: str, reason: str, expected_back: datetime | None) -> str:
    """The declaration in words, for the audit trail (in English, like every reason there;
    times in the plant's time zone): "Declared down: Mechanical > Spindle (unplanned);
    expected back 2026-05-04 14:30 CEST"."""
    back = f"expected back {_local(expected_back)}" if expected_back else "expected back: not known"
    return f"Declared {kind}: {reason}; {back}"


def declare_machine_down(
    machine: Machine,
    *,
    actor: mes_services.ActorLike,
    kind: str,
    code: str = "",
    note: str = "",
    expected_back: datetime | None = None,
    at: datetime | None = None,
    seen: Seen = ANY,
) -> DowntimeRecord:
    """Declare a machine down or blocked (``kind``), why (``code`` of an active reason of
    the tree and/or ``note``) and, if known, when it is expected back (in the future).

    The machine's state becomes down (through ``set_machine_state``, with the expected
    return the live schedule plans from), a state event is appended, and the machine's open
    downtime record carries the declaration: a new one (on the running operation, if any),
    or the one the PLC opened. A declared machine is declared again: kind, reason and
    expected return change. Audited in words. ``seen``: the declaration the caller's
    screen showed (its record id, None for none); refused when it is not the current one.
    Returns the declaration (the open record)."""
    if kind not in DeclaredKind.values:
        raise ValidationFailed.field("kind", gettext("Say whether the machine is down or blocked."))
    choice, text = _reason(code, note, missing=gettext("Say why the machine is down."))
    at = _moment(at)
    _check_expected_back(expected_back, at)
    who = mes_services.Actor.of(actor)
    cause = DECLARED_CAUSE[DeclaredKind(kind)]
    with transaction.atomic():
        locked, record = _lock_declaration(machine)
        if not locked.is_active:
            raise ValidationFailed.field(
                "machine",
                gettext("%(machine)s is not in use; it cannot be declared down.")
                % {"machine": locked.code},
            )
        declared = record if record is not None and record.is_declared else None
        if declared is not None and (
            declared.cause,
            declared.reason,
            declared.reason_choice_id,
            locked.expected_back_at,
            locked.state,
        ) == (cause, text, choice.pk if choice else None, expected_back, MachineState.DOWN):
            return declared  # the same declaration again (a retried form): nothing changes
        _check_seen(locked, declared, seen)
        was, back_before = locked.state, locked.expected_back_at
        before = (record.cause, record.reason) if record is not None else ("", "")
        mes_services.set_machine_state(
            locked,
            state=MachineState.DOWN,
            actor=who,
            at=at,
            reason=text,
            expected_back=expected_back,
        )
        if was != MachineState.DOWN:
            MachineStateEvent.objects.create(
                machine=locked,
                state=MachineState.DOWN,
                started_at=at,
                source=who.name[:80],
                reason=text[:200],
            )
        declared_fields = {
            "cause": cause,
            "reason_choice": choice,
            "reason": text,
            "reason_by": who.user,
            "reason_at": at,
        }
        if record is None:
            running = _running_operations([locked.pk]).get(locked.pk)
            record = DowntimeRecord.objects.create(
                machine=locked, operation_id=running, started_at=at, **declared_fields
            )
        else:  # the PLC's stop (or the earlier declaration) takes this declaration
            for field, value in declared_fields.items():
                setattr(record, field, value)
            record.save(update_fields=list(declared_fields))
        mes_services.write_audit(
            who,
            entity_type=EntityType.MACHINE,
            entity_id=locked.pk,
            entity_label=locked.code,
            work_order=None,
            action=DECLARE_ACTION[DeclaredKind(kind)],
            at=at,
            changes={
                "downtime": record.pk,
                "cause": [before[0], cause],
                "reason": [before[1], text],
                "expected_back": [iso_utc(back_before), iso_utc(expected_back)],
            },
            reason=declared_words(kind, text, expected_back),
        )
        record.machine = locked
        return record


def _state_after_declaration(machine: Machine) -> str:
    """What a machine declared up is: the state its PLC last reported when it has an
    enabled PLC connection and that state is not down, else idle."""
    if MachineConnection.objects.filter(machine=machine, enabled=True).exists():
        last = (
            MachineStateEvent.objects.filter(machine=machine, source__startswith=PLC_ACTOR_PREFIX)
            .order_by("-started_at", "-id")
            .values_list("state", flat=True)
            .first()
        )
        if last is not None and last != MachineState.DOWN:
            return last
    return MachineState.IDLE


def declare_machine_up(
    machine: Machine,
    *,
    actor: mes_services.ActorLike,
    note: str = "",
    at: datetime | None = None,
    seen: Seen = ANY,
) -> Machine:
    """Declare a machine that is down (declared or not) back up: its open downtime record
    closes, its state becomes what :func:`_state_after_declaration` says (with a state
    event), the expected return is cleared. Audited. Refused when the machine is neither
    declared nor down. Returns the machine, fresh."""
    note = (note or "").strip()
    if len(note) > MAX_REASON:
        raise ValidationFailed.field(
            "note", gettext("At most %(n)s characters.") % {"n": MAX_REASON}
        )
    at = _moment(at)
    who = mes_services.Actor.of(actor)
    with transaction.atomic():
        locked, record = _lock_declaration(machine)
        declared = record if record is not None and record.is_declared else None
        _check_seen(locked, declared, seen)
        if declared is None and locked.state != MachineState.DOWN:
            raise Conflict(
                gettext("%(machine)s is not down (it is %(state)s); nothing to bring back up.")
                % {"machine": locked.code, "state": locked.get_state_display().lower()},
                errors={"state": [f"Machine state is {locked.state}."]},
            )
        was, target = locked.state, _state_after_declaration(locked)
        if record is not None:
            record.ended_at = max(record.started_at, at)
            record.save(update_fields=["ended_at"])
        words = "Declared back up" + (f": {note}" if note else "")
        mes_services.set_machine_state(
            locked, state=target, actor=who, at=at, reason=words, expected_back=None
        )
        if was != target:
            MachineStateEvent.objects.create(
                machine=locked,
                state=target,
                started_at=at,
                source=who.name[:80],
                reason=words[:200],
            )
        mes_services.write_audit(
            who,
            entity_type=EntityType.MACHINE,
            entity_id=locked.pk,
            entity_label=locked.code,
            work_order=None,
            action=DECLARE_UP_ACTION,
            at=at,
            changes={
                "downtime": record.pk if record is not None else None,
                "state": [was, target],
                "was": record.reason if record is not None else "",
            },
            reason=f"{words}; now {target}",
        )
        return locked


# --- Reads --------------------------------------------------------------------------------------


def downtimes_needing_reason(
    work_center: WorkCenter | None = None,
) -> QuerySet[DowntimeRecord]:
    """Stops the operator terminal asks a reason for, newest first."""
    records = DowntimeRecord.objects.filter(reason="").select_related(
        "machine", "operation__work_order"
    )
    if work_center is not None:
        records = records.filter(machine__work_center=work_center)
    return records.order_by("-started_at", "-id")


def open_downtime(machine: Machine) -> DowntimeRecord | None:
    return DowntimeRecord.objects.filter(machine=machine, ended_at__isnull=True).first()


def open_downtimes(machine_ids: Iterable[int]) -> dict[int, DowntimeRecord]:
    """Each machine's open stop (declared or not, with or without reason), by machine id,
    with who gave its reason (one query)."""
    return {
        d.machine_id: d
        for d in DowntimeRecord.objects.filter(
            machine_id__in=list(machine_ids), ended_at__isnull=True
        ).select_related("reason_by")
    }


def declaration(machine_ids: Iterable[int]) -> dict[int, DowntimeRecord]:
    """Each declared machine's declaration (its open ``manual`` or ``blocked`` record), by
    machine id, with who declared it (one query)."""
    return {
        d.machine_id: d
        for d in DowntimeRecord.objects.filter(
            machine_id__in=list(machine_ids), ended_at__isnull=True, cause__in=DECLARED_CAUSES
        ).select_related("reason_by")
    }


def downtimes_after(after: datetime, machine_code: str | None = None) -> QuerySet[DowntimeRecord]:
    """Stops still open or ended after ``after`` (the API's downtime feed)."""
    records = DowntimeRecord.objects.filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=after)
    ).select_related("machine", "operation__work_order", "reason_choice__parent", "reason_by")
    if machine_code:
        records = records.filter(machine__code=machine_code)
    return records


def downtime_representation(record: DowntimeRecord, now: datetime) -> dict:
    choice = record.reason_choice
    end = record.ended_at or now
    return {
        "id": record.pk,
        "machine": record.machine.code,
        "work_order": record.operation.work_order.number if record.operation_id else None,
        "operation_sequence": record.operation.sequence if record.operation_id else None,
        "cause": record.cause,
        "started_at": iso_utc(record.started_at),
        "ended_at": iso_utc(record.ended_at),
        "duration_seconds": max(0.0, (end - record.started_at).total_seconds()),
        "reason": record.reason,
        "reason_code": choice.code if choice else None,
        "category": choice.parent.name if choice and choice.parent_id else None,
        "planned": choice.planned if choice else None,
        "reason_by": record.reason_by.get_username() if record.reason_by_id else None,
        "reason_at": iso_utc(record.reason_at),
    }
