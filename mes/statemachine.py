"""Allowed transitions of the work-order and operation state machines.

Pure data and functions, no ORM: the services consult these tables, tests enumerate them.
"""

from __future__ import annotations

from .choices import OperationStatus as Op
from .choices import WorkOrderStatus as WO

WORK_ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    WO.PLANNED: frozenset({WO.RELEASED, WO.CANCELLED}),
    WO.RELEASED: frozenset({WO.IN_PROGRESS, WO.ON_HOLD, WO.CANCELLED}),
    WO.IN_PROGRESS: frozenset({WO.COMPLETED, WO.ON_HOLD}),
    WO.ON_HOLD: frozenset({WO.RELEASED, WO.IN_PROGRESS, WO.CANCELLED}),
    WO.COMPLETED: frozenset(),
    WO.CANCELLED: frozenset(),
}

OPERATION_TRANSITIONS: dict[str, frozenset[str]] = {
    Op.PENDING: frozenset({Op.READY, Op.CANCELLED}),
    Op.READY: frozenset({Op.RUNNING, Op.CANCELLED}),
    Op.RUNNING: frozenset({Op.PAUSED, Op.DONE}),
    Op.PAUSED: frozenset({Op.RUNNING, Op.DONE, Op.CANCELLED}),
    Op.DONE: frozenset(),
    Op.CANCELLED: frozenset(),
}

# Work orders whose operations may be started, resumed or counted.
WORK_ORDER_ACTIVE = frozenset({WO.RELEASED, WO.IN_PROGRESS})
# Operation states in which production is being (or was just) reported.
OPERATION_COUNTING = frozenset({Op.RUNNING, Op.PAUSED})
WORK_ORDER_TERMINAL = frozenset({WO.COMPLETED, WO.CANCELLED})
OPERATION_TERMINAL = frozenset({Op.DONE, Op.CANCELLED})


def work_order_may(from_status: str, to_status: str) -> bool:
    return to_status in WORK_ORDER_TRANSITIONS[from_status]


def operation_may(from_status: str, to_status: str) -> bool:
    return to_status in OPERATION_TRANSITIONS[from_status]
