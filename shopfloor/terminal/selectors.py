"""Reads for the terminal screens: machines with what runs on them (and their stops and
declarations), and the dispatch queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone
from django.utils.formats import date_format

from mes.choices import OperationStatus, Priority, WorkOrderStatus
from mes.formats import parse_int
from mes.models import Machine, Operation, WorkCenter
from shopfloor import downtime
from shopfloor.models import DowntimeRecord

from .models import Terminal

Op = OperationStatus


@dataclass
class MachineTile:
    machine: Machine
    operation: Operation | None
    downtime: DowntimeRecord | None  # open and still without a reason
    declared: DowntimeRecord | None = None  # declared down or blocked by hand

    @property
    def needs_reason(self) -> bool:
        return self.downtime is not None

    @property
    def expected_back(self) -> str:
        """When the declared machine is expected back: "14:30", or "05.12. 14:30" when
        that is not today ("" when not known)."""
        return expected_back_label(self.machine.expected_back_at)


def expected_back_label(moment: datetime | None) -> str:
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    same_day = local.date() == timezone.localdate()
    return date_format(local, "H:i" if same_day else "d.m. H:i")


def machine_tiles(work_center: WorkCenter) -> list[MachineTile]:
    machines = list(Machine.objects.filter(work_center=work_center, is_active=True))
    ids = [m.pk for m in machines]
    ops: dict[int, Operation] = {}
    for op in (
        Operation.objects.filter(machine_id__in=ids, status__in=[Op.RUNNING, Op.PAUSED])
        .select_related("work_order__product")
        .order_by("-status", "-updated_at")
    ):
        ops.setdefault(op.machine_id, op)
    stops = downtime.open_downtimes(ids)  # one query: stops needing a reason, declarations
    tiles = []
    for m in machines:
        stop = stops.get(m.pk)
        tiles.append(
            MachineTile(
                m,
                ops.get(m.pk),
                stop if stop is not None and not stop.reason else None,
                stop if stop is not None and stop.is_declared else None,
            )
        )
    return tiles


def machine_here(code: str, work_center: WorkCenter) -> Machine | None:
    """An active machine of this work center by its code (None for any other)."""
    return Machine.objects.filter(code=code, work_center=work_center, is_active=True).first()


def dispatch_queue(work_center: WorkCenter, limit: int = 30) -> list[Operation]:
    """Ready and upcoming operations here, in dispatch order: as the live schedule plans
    them (mes.scheduling), then - for what it has not planned (orders on hold) - rush
    first, what can start now, by due date."""
    return list(
        Operation.objects.filter(
            work_center=work_center,
            status__in=[Op.READY, Op.PENDING],
            work_order__status__in=[
                WorkOrderStatus.RELEASED,
                WorkOrderStatus.IN_PROGRESS,
                WorkOrderStatus.ON_HOLD,
            ],
        )
        .select_related("work_order__product")
        .annotate(
            rush=Case(
                When(work_order__priority=Priority.RUSH, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
            startable=Case(
                When(status=Op.READY, then=Value(0)), default=Value(1), output_field=IntegerField()
            ),
        )
        .order_by(
            F("planned_start").asc(nulls_last=True),
            "rush",
            "startable",
            "work_order__due_date",
            "work_order__number",
            "sequence",
        )[:limit]
    )


def operation_for_terminal(pk: int) -> Operation | None:
    return (
        Operation.objects.select_related(
            "work_order__product", "work_center", "machine", "last_operator"
        )
        .filter(pk=pk)
        .first()
    )


def resolve_scan(code: str, work_center: WorkCenter | None) -> Operation | None:
    """A scanned traveler barcode: ``WO-1001/20`` (an operation) or ``WO-1001`` (the
    order: its operation at this work center that is not finished, else its current one)."""
    code = (code or "").strip()
    number, _, sequence = code.partition("/")
    ops = Operation.objects.filter(work_order__number=number).order_by("sequence")
    if sequence:
        seq = parse_int(sequence)  # ASCII digits: "²" passes isdigit() but not int()
        return ops.filter(sequence=seq).first() if seq is not None else None
    open_ops = ops.exclude(status__in=[Op.DONE, Op.CANCELLED])
    if work_center is not None:
        here = open_ops.filter(work_center=work_center).first()
        if here:
            return here
    return open_ops.first() or ops.last()


def enrolled_terminals():
    """Terminals for the supervisors' list: active ones first, then the 50 last revoked."""
    base = Terminal.objects.select_related("work_center", "enrolled_by", "revoked_by")
    active = list(base.filter(revoked_at__isnull=True).order_by("work_center__code", "name"))
    revoked = list(base.filter(revoked_at__isnull=False).order_by("-revoked_at")[:50])
    return active + revoked
