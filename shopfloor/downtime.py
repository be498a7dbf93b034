"""Downtime: a machine's stops while an operation runs on it, and why it stopped.

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

Writes run inside the caller's transaction or in their own; reads serve the terminal and
the admin. The records and the reason tree are in :mod:`shopfloor.models`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from mes import services as mes_services
from mes.choices import EntityType, MachineState, OperationStatus
from mes.errors import ValidationFailed
from mes.models import Machine, Operation, WorkCenter

from .choices import DowntimeCause
from .models import DowntimeReason, DowntimeRecord

MAX_REASON = 500


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
    record of a machine that runs again; open one for a machine that went down while an
    operation ran on it."""
    running_again = {r.machine_id: r for r in changed if r.state == MachineState.RUNNING}
    if running_again:
        records = list(
            DowntimeRecord.objects.select_for_update().filter(
                machine_id__in=running_again, ended_at__isnull=True
            )
        )
        for record in records:
            record.ended_at = max(record.started_at, running_again[record.machine_id].at)
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
                "code", gettext("“%(code)s” is not an active downtime reason.") % {"code": code}
            )
    elif not note:
        raise ValidationFailed.field("reason", gettext("Say why the machine stopped."))
    text = note
    if choice is not None:
        # Stored in English like every reason in the audit trail; read by everyone.
        kind = "planned" if choice.planned else "unplanned"
        text = f"{choice.path} ({kind})" + (f": {note}" if note else "")
    if len(text) > MAX_REASON:
        raise ValidationFailed.field("reason", f"At most {MAX_REASON} characters.")
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


def open_without_reason(machine_ids: Iterable[int]) -> dict[int, DowntimeRecord]:
    """Each machine's open stop that still waits for its reason, by machine id (one query)."""
    return {
        d.machine_id: d
        for d in DowntimeRecord.objects.filter(
            machine_id__in=machine_ids, ended_at__isnull=True, reason=""
        )
    }
