"""Machines: their state (running, idle, down, ...), from the PLC or by hand."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from ..choices import EntityType, MachineState
from ..errors import ValidationFailed
from ..models import Machine
from .common import Actor, ActorLike, _when, write_audit


def set_machine_state(
    machine: Machine,
    *,
    state: str,
    actor: ActorLike,
    at: datetime | None = None,
    reason: str = "",
) -> bool:
    """Record a machine state change. Returns False, writing nothing, when the machine is
    already in that state (pollers report the same state over and over)."""
    actor, at = Actor.of(actor), _when(at)
    if state not in MachineState.values:
        raise ValidationFailed.field("state", f"Unknown machine state {state!r}.")
    with transaction.atomic():
        locked = Machine.objects.select_for_update().get(pk=machine.pk)
        if locked.state == state:
            return False
        from_state = locked.state
        locked.state, locked.state_since = state, at
        locked.save(update_fields=["state", "state_since"])
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
        )
        machine.state, machine.state_since = state, at
        return True
