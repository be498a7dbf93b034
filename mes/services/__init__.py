"""Every state change of the production domain, one function per transition.

Each service
- runs in one ``transaction.atomic()``,
- re-reads the rows it changes with ``select_for_update()`` (lock order: work order, then
  its operations by sequence, then a machine),
- checks the transition tables in :mod:`mes.statemachine` and the business rules,
- saves with ``update_fields``, writes one append-only :class:`~mes.models.AuditRecord` per
  changed entity state, and one ``work_order.updated`` outbox event per call,
- raises a :mod:`mes.errors` domain error on refusal, having changed nothing.

Views, the API, Celery tasks and the admin call these; nothing else writes these fields.
Services return the fresh, locked instance: callers' instances are stale afterwards.

By subject: :mod:`.work_orders`, :mod:`.operations`, :mod:`.machines`, :mod:`.routings`;
what they share (the actor, audit records, locks, versioned saves) is in :mod:`.common`;
:mod:`.bulk` has the set-based writes of services that change many rows at once
(``report_quantities``, and the live schedule's ``apply_schedules``).
The live schedule's writer, ``apply_schedules``, lives with the scheduler
(:mod:`mes.scheduling.services`). Callers import the public names from here.
"""

from .common import (
    MAX_QUANTITY,
    PAST_TENSE,
    Actor,
    ActorLike,
    describe_change,
    describe_last_change,
    write_audit,
)
from .machines import set_machine_state
from .operations import (
    QuantityReport,
    complete_operation,
    confirmation_representation,
    pause_operation,
    report_quantities,
    report_quantity,
    resume_operation,
    start_operation,
)
from .routings import activate_routing
from .work_orders import (
    cancel_work_order,
    create_work_order,
    hold_work_order,
    release_work_order,
    update_work_order,
)

__all__ = [
    "MAX_QUANTITY",
    "PAST_TENSE",
    "Actor",
    "ActorLike",
    "QuantityReport",
    "activate_routing",
    "cancel_work_order",
    "complete_operation",
    "confirmation_representation",
    "create_work_order",
    "describe_change",
    "describe_last_change",
    "hold_work_order",
    "pause_operation",
    "release_work_order",
    "report_quantities",
    "report_quantity",
    "resume_operation",
    "set_machine_state",
    "start_operation",
    "update_work_order",
    "write_audit",
]
