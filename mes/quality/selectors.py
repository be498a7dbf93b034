"""Reads for quality: which checks are due on an operation, open holds, results and
nonconformances for screens and the API."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from mes.choices import OperationStatus
from mes.formats import iso_utc, quantity
from mes.models import Operation, WorkOrder

from . import spc
from .choices import CheckKind, NonconformanceStatus, Reaction
from .models import (
    InspectionCharacteristic,
    InspectionResult,
    Nonconformance,
    OperationCheck,
    ScrapReason,
    SpcBaseline,
)
from .sampling import Sample, SamplingRule, due_samples

STARTED = {OperationStatus.RUNNING, OperationStatus.PAUSED}


@dataclass(frozen=True)
class DueCheck:
    check: OperationCheck
    sample: Sample

    @property
    def mandatory(self) -> bool:
        return self.check.mandatory

    @property
    def label(self) -> str:
        """The sample in the reader's language ("piece 50", "Stück 50")."""
        return sample_display(self.sample.key)


def sample_display(key: str) -> str:
    kind, _sep, number = key.partition(":")
    if kind == "first":
        return gettext("first piece")
    if kind == "last":
        return gettext("last piece")
    if kind == "piece":
        return gettext("piece %(n)s") % {"n": number}
    if kind == "time":
        return gettext("after %(n)s min") % {"n": number}
    if kind == "extra":
        return gettext("extra sample %(n)s") % {"n": number}
    return key


def rule_of(check: OperationCheck) -> SamplingRule:
    return SamplingRule(
        first_piece=check.first_piece,
        every_n=check.every_n,
        every_minutes=check.every_minutes,
        last_piece=check.last_piece,
    )


def running_seconds(op: Operation, now=None) -> Decimal:
    total = op.run_seconds
    if op.running_since is not None:
        elapsed = ((now or timezone.now()) - op.running_since).total_seconds()
        total += Decimal(str(max(0.0, round(elapsed, 3))))
    return total


def recorded_keys(check_ids: list[int]) -> dict[int, set[str]]:
    recorded: dict[int, set[str]] = defaultdict(set)
    for check_id, key in (
        InspectionResult.objects.filter(characteristic_id__in=check_ids, is_current=True)
        .order_by()
        .values_list("characteristic_id", "sample_key")
    ):
        recorded[check_id].add(key)
    return recorded


def checks_of(op: Operation) -> list[OperationCheck]:
    return list(OperationCheck.objects.filter(operation=op))


def due_checks(
    op: Operation,
    *,
    completing: bool = False,
    now=None,
    checks: list[OperationCheck] | None = None,
) -> list[DueCheck]:
    """Samples due on a started operation, in plan order (none before it starts).
    ``checks``: the operation's checks when the caller has them already."""
    if op.status not in STARTED:
        return []
    checks = checks_of(op) if checks is None else checks
    if not checks:
        return []
    recorded = recorded_keys([c.pk for c in checks])
    seconds = running_seconds(op, now)
    due = []
    for check in checks:
        for sample in due_samples(
            rule_of(check),
            good=op.quantity_good,
            run_seconds=seconds,
            target=op.work_order.quantity,
            completing=completing,
            recorded=recorded[check.pk],
        ):
            due.append(DueCheck(check, sample))
    return due


def open_holds(*, operation: Operation | None = None, work_order: WorkOrder | None = None):
    """Open nonconformances that hold this operation (or this order)."""
    qs = Nonconformance.objects.filter(status=NonconformanceStatus.OPEN).exclude(
        reaction=Reaction.WARN
    )
    if operation is not None:
        return qs.filter(operation=operation, reaction=Reaction.HOLD_OPERATION)
    return qs.filter(work_order=work_order, reaction=Reaction.HOLD_WORK_ORDER)


def holds_on(op: Operation) -> list[Nonconformance]:
    """Open nonconformances that hold this operation or its order."""
    return list(open_holds(operation=op) | open_holds(work_order=op.work_order))


def scrap_reason_exists(code: str) -> bool:
    return ScrapReason.objects.filter(code=code, active=True).exists()


def results_of(op: Operation) -> QuerySet[InspectionResult]:
    return (
        InspectionResult.objects.filter(operation=op)
        .select_related("characteristic", "machine")
        .order_by("characteristic__position", "characteristic__code", "seq")
    )


def nonconformances(status: str | None = None) -> QuerySet[Nonconformance]:
    qs = Nonconformance.objects.select_related(
        "work_order", "operation", "characteristic", "result"
    ).order_by("-opened_at", "-id")
    if status:
        qs = qs.filter(status=status)
    return qs


def versions_of(result: InspectionResult) -> QuerySet[InspectionResult]:
    """Every version of the sample ``result`` belongs to, the first first."""
    return InspectionResult.objects.filter(
        characteristic_id=result.characteristic_id, sample_key=result.sample_key
    ).order_by("version")


def current_version(result: InspectionResult) -> InspectionResult:
    """The current version of the sample ``result`` belongs to."""
    return (
        InspectionResult.objects.filter(
            characteristic_id=result.characteristic_id,
            sample_key=result.sample_key,
            is_current=True,
        ).first()
        or result
    )


# --- Representations (the API and the outbox) ---------------------------------------------------


def _spec(value) -> int | float | None:
    return None if value is None else quantity(value)


def result_representation(r: InspectionResult) -> dict:
    check = r.characteristic
    return {
        "seq": r.seq,
        "work_order": r.work_order.number,
        "operation_sequence": r.operation.sequence,
        "characteristic": check.code,
        "name": check.name,
        "series": r.series,
        "kind": check.kind,
        "sample": r.sample_key,
        "values": r.values,
        "unit": check.unit,
        "lower_limit": _spec(check.lower_limit),
        "upper_limit": _spec(check.upper_limit),
        "verdict": r.verdict,
        "defect_code": r.defect_code or None,
        "version": r.version,
        "supersedes": r.supersedes.seq if r.supersedes_id else None,
        "correction_reason": r.correction_reason or None,
        "machine": r.machine.code if r.machine_id else None,
        "recorded_by": r.recorded_by_name,
        "recorded_at": iso_utc(r.recorded_at),
    }


def nonconformance_representation(nc: Nonconformance) -> dict:
    current = current_version(nc.result)
    return {
        "number": nc.number,
        "status": nc.status,
        "work_order": nc.work_order.number,
        "operation_sequence": nc.operation.sequence,
        "characteristic": nc.characteristic.code,
        "name": nc.characteristic.name,
        "sample": current.sample_key,
        "values": current.values,
        "unit": nc.characteristic.unit,
        "lower_limit": _spec(nc.characteristic.lower_limit),
        "upper_limit": _spec(nc.characteristic.upper_limit),
        "result_seq": current.seq,
        "reaction": nc.reaction,
        "description": nc.description,
        "opened_at": iso_utc(nc.opened_at),
        "opened_by": nc.opened_by_name,
        "disposition": nc.disposition or None,
        "disposition_quantity": (
            None if nc.disposition_quantity is None else quantity(nc.disposition_quantity)
        ),
        "rework_operation_sequence": (
            nc.rework_operation.sequence if nc.rework_operation_id else None
        ),
        "closed_at": iso_utc(nc.closed_at),
        "closed_by": nc.closed_by_name or None,
        "updated_at": iso_utc(nc.updated_at),
    }


def results_after(after: int, limit: int) -> list[InspectionResult]:
    return list(
        InspectionResult.objects.filter(seq__gt=after)
        .select_related("characteristic", "operation", "work_order", "machine", "supersedes")
        .order_by("seq")[:limit]
    )


# --- SPC ----------------------------------------------------------------------------------------

# The chart and its statistics cover the latest samples of a series (a rolling window);
# frozen limits come from the baseline whatever the window.
SPC_WINDOW = 500


def series_rows(series: str, *, window: int | None = SPC_WINDOW) -> list[tuple]:
    """(seq, [float values], sample label, work order number) of the current numeric
    results of a series, oldest first; the latest ``window`` of them."""
    qs = (
        InspectionResult.objects.filter(series=series, is_current=True)
        .order_by("-seq")
        .values_list("seq", "values", "sample_label", "work_order__number")
    )
    if window:
        qs = qs[:window]
    rows = []
    for seq, values, label, number in qs:
        try:
            numbers = [float(v) for v in values]
        except (TypeError, ValueError):
            continue  # attribute results (pass/fail) are not charted
        rows.append((seq, numbers, label, number))
    rows.reverse()
    return rows


# Rule violations among this many latest samples count as open on the list of charts.
RECENT = 25


@dataclass
class SeriesPage:
    series: str
    routing: str
    sequence: int
    code: str
    name: str
    kind: str
    unit: str
    lower: float | None
    upper: float | None
    rows: list[tuple]
    analysis: spc.Analysis | None
    baseline: SpcBaseline | None

    @property
    def recent_violations(self) -> list[spc.Violation]:
        if self.analysis is None:
            return []
        first = len(self.analysis.points) - RECENT
        return [v for v in self.analysis.violations if v.index >= first]

    @property
    def recent_rules(self) -> list[int]:
        return sorted({v.rule for v in self.recent_violations})

    @property
    def violation_list(self) -> list[tuple[str, list[spc.Violation]]]:
        """Newest first, by the sample they sit on ("WO-1001 · piece 50")."""
        if self.analysis is None:
            return []
        by_point: dict[int, list[spc.Violation]] = {}
        for v in self.analysis.violations:
            by_point.setdefault(v.index, []).append(v)
        return [
            (f"{self.rows[i][3]} · {self.rows[i][2]}", by_point[i])
            for i in sorted(by_point, reverse=True)
        ]

    @property
    def latest(self) -> tuple | None:
        return self.rows[-1] if self.rows else None


def _float(value) -> float | None:
    return None if value is None else float(value)


def series_page(
    routing: str, sequence: int, code: str, *, window: int | None = SPC_WINDOW
) -> SeriesPage | None:
    """A characteristic's SPC: its latest samples analysed against frozen limits, or
    against limits computed from these samples."""
    from .plans import series_key

    master = (
        InspectionCharacteristic.objects.filter(
            step__routing__code=routing, step__sequence=sequence, code=code
        )
        .select_related("step")
        .first()
    )
    series = series_key(routing, sequence, code)
    spec = master or OperationCheck.objects.filter(series=series).order_by("-id").first()
    if spec is None:
        return None
    rows = series_rows(series, window=window)
    baseline = SpcBaseline.objects.filter(series=series).first()
    analysis = None
    if rows:
        try:
            analysis = spc.analyse(
                [r[1] for r in rows],
                lsl=_float(spec.lower_limit),
                usl=_float(spec.upper_limit),
                baseline=spc.limits_from_dict(baseline.limits) if baseline else None,
            )
        except ValueError:
            analysis = None
    return SeriesPage(
        series=series,
        routing=routing,
        sequence=sequence,
        code=code,
        name=spec.name,
        kind=spec.kind,
        unit=spec.unit,
        lower=_float(spec.lower_limit),
        upper=_float(spec.upper_limit),
        rows=rows,
        analysis=analysis,
        baseline=baseline,
    )


def series_summaries() -> list[SeriesPage]:
    """Every measured characteristic of the routings, with its latest analysis."""
    pages = []
    for c in (
        InspectionCharacteristic.objects.filter(kind=CheckKind.VARIABLE)
        .select_related("step__routing")
        .order_by("step__routing__code", "step__sequence", "position", "code")
    ):
        page = series_page(c.step.routing.code, c.step.sequence, c.code)
        if page is not None:
            pages.append(page)
    return pages
