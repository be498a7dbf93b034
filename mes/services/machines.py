"""Machines: their state (running, idle, down, ...), from the PLC or by hand."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Final, Literal

from django.db import transaction
from django.utils import timezone

from ..choices import EntityType, MachineState
from ..errors import ValidationFailed
from ..formats import iso_utc
from ..models import Machine
from ..performance import oee, rollups
from .common import Actor, ActorLike, _when, write_audit


class _Keep(enum.Enum):
    KEEP = "keep"


# ``expected_back`` not given: a state change clears the expected return, the same state
# keeps it (a PLC that confirms "down" does not wipe what a person said).
KEEP: Final = _Keep.KEEP


def set_machine_state(
    machine: Machine,
    *,
    state: str,
    actor: ActorLike,
    at: datetime | None = None,
    reason: str = "",
    expected_back: datetime | Literal[_Keep.KEEP] | None = KEEP,
) -> bool:
    """Record a machine's state and, for a machine declared down by hand, when it is
    expected back (``Machine.expected_back_at``, which the live schedule plans from; None:
    not known). Any state change clears the expected return unless it is given.

    Returns False, writing nothing, when the machine is already in that state with that
    expected return (pollers report the same state over and over). Changing only the
    expected return is a change too: audited, and the schedule re-plans."""
    actor, at = Actor.of(actor), _when(at)
    if state not in MachineState.values:
        raise ValidationFailed.field("state", f"Unknown machine state {state!r}.")
    if isinstance(expected_back, datetime) and timezone.is_naive(expected_back):
        raise ValidationFailed.field("expected_back", "Times must carry a time zone.")
    with transaction.atomic():
        locked = Machine.objects.select_for_update().get(pk=machine.pk)
        if expected_back is KEEP:
            back = locked.expected_back_at if locked.state == state else None
        else:
            back = expected_back
        if locked.state == state and locked.expected_back_at == back:
            return False
        from_state, before = locked.state, locked.expected_back_at
        fields = ["expected_back_at"]
        if locked.state != state:
            since, stopped_at = locked.state_since, locked.stopped_at
            locked.state, locked.state_since = state, at
            if not oee.is_stop(state):
                locked.stopped_at = None
            elif not oee.is_stop(from_state):
                locked.stopped_at = at
            fields += ["state", "state_since", "stopped_at"]
            # The span of the state it leaves goes into the performance rollups.
            rollups.record_state_change(
                locked.pk,
                from_state=from_state,
                since=since,
                to_state=state,
                at=at,
                stopped_at=stopped_at,
            )
        locked.expected_back_at = back
        locked.save(update_fields=fields)
        write_audit(
            actor,
            entity_type=EntityType.MACHINE,
            entity_id=locked.pk,
            entity_label=locked.code,
            work_order=None,
            action="set_state",
            at=at,
            from_state=from_state,
            to_state=state,
            reason=reason,
            changes={"expected_back": [iso_utc(before), iso_utc(back)]} if before != back else {},
        )
        machine.state, machine.state_since = locked.state, locked.state_since
        machine.expected_back_at = back
        return True
