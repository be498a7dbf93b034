"""Quality actions: record a result (and close the loop when it is out of spec), correct
a result, disposition a nonconformance under an electronic signature, freeze SPC limits.

Each is one transaction that locks the work order and its operations in the services'
lock order, writes the audit record and the ERP's outbox event. Clocks are taken in the
order work orders, quality results, nonconformances.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from erp_sync.models import EventType
from erp_sync.outbox import record_event
from mes import clock
from mes.accounts import has_role
from mes.choices import EntityType, Role
from mes.choices import OperationStatus as Op
from mes.choices import WorkOrderStatus as WO
from mes.errors import Conflict, InvalidTransition, ValidationFailed
from mes.formats import display_quantity, parse_decimal
from mes.models import Operation
from mes.services import hold_work_order, pause_operation, report_quantity
from mes.services.common import (
    Actor,
    ActorLike,
    _lock_operation,
    _lock_operations,
    _lock_work_order,
    _save_work_order,
    _when,
    write_audit,
)
from mes.services.work_orders import lift_hold

from . import selectors, spc
from .choices import (
    QUALITY_HOLD,
    CheckKind,
    Disposition,
    NonconformanceStatus,
    Reaction,
    SignatureMeaning,
    Verdict,
)
from .models import (
    InspectionResult,
    Nonconformance,
    OperationCheck,
    Signature,
    SpcBaseline,
)
from .sampling import extra_sample, label_of

RESULTS = "quality_results"
NONCONFORMANCES = "nonconformances"
DECIMAL_TEXT = re.compile(r"[+-]?[0-9]{1,12}(\.[0-9]{1,9})?")  # ASCII: \d takes "١٢"
SCRAP_BY_DISPOSITION = "QUALITY"


# --- Reading what was entered -------------------------------------------------------------------


def _parse_values(check: OperationCheck, values: list[str], defect_code: str) -> tuple:
    """Validate the entered values; return (stored texts, verdict, defect code, why)."""
    values = [str(v).strip() for v in values]
    if check.kind == CheckKind.ATTRIBUTE:
        if len(values) != 1 or values[0] not in (Verdict.PASS, Verdict.FAIL):
            raise ValidationFailed.field("values", _("Choose pass or fail."))
        verdict = values[0]
        defect_code = (defect_code or "").strip()
        if verdict == Verdict.FAIL:
            if check.defect_codes and defect_code not in check.defect_codes:
                raise ValidationFailed.field("defect_code", _("Choose the defect you found."))
            return (
                values,
                verdict,
                defect_code,
                "failed" + (f": {defect_code}" if defect_code else ""),
            )
        return values, verdict, "", ""
    if len(values) != check.sample_size or not all(values):
        raise ValidationFailed.field(
            "values",
            _("Enter %(n)s value(s) for %(name)s.") % {"n": check.sample_size, "name": check.name},
        )
    texts, outside = [], []
    for raw in values:
        text = raw.replace(",", ".")
        if not DECIMAL_TEXT.fullmatch(text):
            raise ValidationFailed.field(
                "values", _("%(value)s is not a number.") % {"value": raw[:40]}
            )
        number = Decimal(text)
        texts.append(text)
        # Kept on the nonconformance, so in English like the audit trail's reasons.
        if check.lower_limit is not None and number < check.lower_limit:
            outside.append(f"{text} is below the lower limit {display_quantity(check.lower_limit)}")
        elif check.upper_limit is not None and number > check.upper_limit:
            outside.append(f"{text} is above the upper limit {display_quantity(check.upper_limit)}")
    verdict = Verdict.FAIL if outside else Verdict.PASS
    return texts, verdict, "", "; ".join(outside)


def _check_of(check: OperationCheck, op: Operation) -> OperationCheck:
    fresh = OperationCheck.objects.filter(pk=check.pk, operation_id=op.pk).first()
    if fresh is None:
        raise ValidationFailed.field(
            "check", _("This check does not belong to %(op)s.") % {"op": op.label}
        )
    return fresh


# --- Recording ----------------------------------------------------------------------------------


def record_result(
    operation: Operation,
    *,
    check: OperationCheck,
    values: list[str],
    actor: ActorLike,
    sample_key: str = "",
    defect_code: str = "",
    at: datetime | None = None,
) -> InspectionResult:
    """Record one sample of a check on a running or paused operation. Out of spec, in the
    same transaction: a nonconformance opens and the check's reaction runs (the operation
    is paused with "Quality hold", or the work order is held)."""
    actor, at = Actor.of(actor), _when(at)
    with transaction.atomic():
        wo, _ops, op = _lock_operation(operation)
        check = _check_of(check, op)
        if op.status not in selectors.STARTED:
            raise InvalidTransition(
                _("%(op)s is %(status)s; checks are recorded while it runs or is paused.")
                % {"op": op.label, "status": op.get_status_display().lower()},
                errors={"status": [f"Operation status is {op.status}."]},
            )
        texts, verdict, defect_code, why = _parse_values(check, values, defect_code)
        recorded = selectors.recorded_keys([check.pk])[check.pk]
        sample_key = (sample_key or "").strip()
        if sample_key in recorded:
            raise Conflict(
                _("%(name)s, %(sample)s is already recorded; correct that result instead.")
                % {"name": check.name, "sample": label_of(sample_key)},
                errors={"sample": ["Already recorded."]},
            )
        if not sample_key:  # the earliest due sample, else an extra one
            due = [d for d in selectors.due_checks(op, now=at) if d.check.pk == check.pk]
            sample = due[0].sample if due else extra_sample(recorded)
            sample_key, sample_label = sample.key, sample.label
        else:
            if not re.fullmatch(r"(first|last|(piece|time|extra):\d{1,9})", sample_key):
                raise ValidationFailed.field("sample", _("Unknown sample."))
            sample_label = label_of(sample_key)
        if verdict == Verdict.FAIL:
            _react(wo, op, check, actor=actor, at=at, why=why)
        result = _write_result(
            wo,
            op,
            check,
            actor=actor,
            at=at,
            texts=texts,
            verdict=verdict,
            defect_code=defect_code,
            sample_key=sample_key,
            sample_label=sample_label,
        )
        if verdict == Verdict.FAIL:
            _open_nonconformance(wo, op, check, result, actor=actor, at=at, why=why)
        return result


def _write_result(
    wo,
    op,
    check,
    *,
    actor,
    at,
    texts,
    verdict,
    defect_code,
    sample_key,
    sample_label,
    supersedes=None,
    reason="",
) -> InspectionResult:
    result = InspectionResult.objects.create(
        seq=clock.next_value(RESULTS),
        characteristic=check,
        series=check.series,
        operation=op,
        work_order=wo,
        machine=op.machine,
        sample_key=sample_key,
        sample_label=sample_label,
        values=texts,
        defect_code=defect_code,
        verdict=verdict,
        version=supersedes.version + 1 if supersedes else 1,
        supersedes=supersedes,
        correction_reason=reason,
        recorded_by=actor.user,
        recorded_by_name=actor.name[:150],
        recorded_at=at,
    )
    changes: dict[str, Any] = {
        "check": check.name,
        "sample": sample_label,
        "values": ", ".join(texts) + (f" {check.unit}" if check.unit else ""),
        "verdict": verdict,
    }
    if supersedes is not None:
        changes["values"] = [", ".join(supersedes.values), changes["values"]]
        changes["version"] = result.version
    write_audit(
        actor,
        entity_type=EntityType.QUALITY_RESULT,
        entity_id=result.pk,
        entity_label=f"{op.label} {check.code}",
        work_order=wo,
        action="correct_check" if supersedes else "record_check",
        at=at,
        changes=changes,
        reason=reason,
    )
    return result


def _react(wo, op, check, *, actor: Actor, at: datetime, why: str) -> None:
    """The check's reaction to an out-of-spec result, through the production services.
    Runs before the result is written: the work orders' clock comes first."""
    if check.reaction == Reaction.HOLD_OPERATION and op.status == Op.RUNNING:
        pause_operation(op, actor=actor, reason=QUALITY_HOLD, at=at)
    elif check.reaction == Reaction.HOLD_WORK_ORDER and wo.status in (WO.RELEASED, WO.IN_PROGRESS):
        hold_work_order(wo, actor=actor, reason=f"{QUALITY_HOLD}: {check.name} {why}", at=at)


def _open_nonconformance(wo, op, check, result, *, actor: Actor, at: datetime, why: str):
    number = f"NC-{clock.next_value(NONCONFORMANCES):06d}"
    nc = Nonconformance.objects.create(
        number=number,
        result=result,
        characteristic=check,
        operation=op,
        work_order=wo,
        reaction=check.reaction,
        description=f"{check.name}, {result.sample_label}: {why}",
        opened_at=at,
        opened_by_name=actor.name[:150],
        updated_at=at,
    )
    write_audit(
        actor,
        entity_type=EntityType.NONCONFORMANCE,
        entity_id=nc.pk,
        entity_label=nc.number,
        work_order=wo,
        action="open",
        at=at,
        to_state=NonconformanceStatus.OPEN,
        changes={"operation": op.label, "check": check.name, "reaction": check.reaction},
        reason=nc.description,
    )
    _emit(nc, at)
    return nc


def _emit(nc: Nonconformance, at: datetime) -> None:
    record_event(
        event_type=EventType.QUALITY_NONCONFORMANCE,
        aggregate_key=nc.work_order.number,
        data=selectors.nonconformance_representation(nc),
        occurred_at=at,
    )


def correct_result(
    result: InspectionResult,
    *,
    values: list[str],
    reason: str,
    actor: ActorLike,
    defect_code: str = "",
    at: datetime | None = None,
) -> InspectionResult:
    """A new version of a sample with a reason; the original stays visible. A correction
    out of spec opens a nonconformance like a first recording does."""
    actor, at = Actor.of(actor), _when(at)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed.field("reason", _("A correction needs a reason."))
    with transaction.atomic():
        wo, _ops, op = _lock_operation(result.operation)
        current = InspectionResult.objects.select_for_update().get(pk=result.pk)
        if not current.is_current:
            newer = selectors.current_version(current)
            raise Conflict(
                _("This result was corrected by %(who)s at %(when)s; correct the current version.")
                % {
                    "who": newer.recorded_by_name,
                    "when": date_format(timezone.localtime(newer.recorded_at), "H:i"),
                },
            )
        check = current.characteristic
        texts, verdict, defect_code, why = _parse_values(check, values, defect_code)
        opens = (
            verdict == Verdict.FAIL
            and not Nonconformance.objects.filter(
                characteristic=check,
                result__sample_key=current.sample_key,
                status=NonconformanceStatus.OPEN,
            ).exists()
        )
        if opens:
            _react(wo, op, check, actor=actor, at=at, why=why)
        current.is_current = False
        current.save(update_fields=["is_current"])
        new = _write_result(
            wo,
            op,
            check,
            actor=actor,
            at=at,
            texts=texts,
            verdict=verdict,
            defect_code=defect_code,
            sample_key=current.sample_key,
            sample_label=current.sample_label,
            supersedes=current,
            reason=reason,
        )
        if opens:
            _open_nonconformance(wo, op, check, new, actor=actor, at=at, why=why)
        return new


# --- Disposition under signature ----------------------------------------------------------------


def signed_content(nc: Nonconformance) -> dict:
    """What a signature on a nonconformance binds: the record as it stands, including the
    current version of the result it is about."""
    current = selectors.current_version(nc.result)
    return {
        "number": nc.number,
        "status": nc.status,
        "work_order": nc.work_order.number,
        "operation": nc.operation.sequence,
        "check": nc.characteristic.code,
        "sample": current.sample_key,
        "values": current.values,
        "result_version": current.version,
        "description": nc.description,
        "disposition": nc.disposition,
        "quantity": str(nc.disposition_quantity) if nc.disposition_quantity is not None else None,
        "rework_operation": nc.rework_operation.sequence if nc.rework_operation_id else None,
        "comment": nc.disposition_comment,
    }


def record_hash(nc: Nonconformance) -> str:
    text = json.dumps(signed_content(nc), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def signature_is_valid(signature: Signature) -> bool:
    return signature.record_hash == record_hash(signature.nonconformance)


def _rework_operation(
    wo, ops: list[Operation], op: Operation, *, actor: Actor, at: datetime
) -> Operation:
    """A rework operation right after the one that failed, at the same work center."""
    later = [o.sequence for o in ops if o.sequence > op.sequence]
    upper = min(later) if later else op.sequence + 10
    if upper - op.sequence < 2:
        raise Conflict(
            _("There is no free step number between %(a)s and %(b)s for a rework step.")
            % {"a": op.sequence, "b": upper}
        )
    sequence = op.sequence + max(1, (upper - op.sequence) // 2)
    status = Op.READY if op.status == Op.DONE else Op.PENDING
    rework = Operation.objects.create(
        work_order=wo,
        sequence=sequence,
        name=f"Rework: {op.name}"[:200],
        work_center=op.work_center,
        setup_seconds=0,
        cycle_seconds=op.cycle_seconds,
        instructions=op.instructions,
        status=status,
    )
    write_audit(
        actor,
        entity_type=EntityType.OPERATION,
        entity_id=rework.pk,
        entity_label=rework.label,
        work_order=wo,
        action="create",
        at=at,
        to_state=status,
        changes={"name": rework.name, "work_center": op.work_center.code},
    )
    return rework


def disposition_nonconformance(
    nonconformance: Nonconformance,
    *,
    decision: str,
    signer: AbstractBaseUser,
    password: str,
    meaning: str,
    comment: str = "",
    quantity: Decimal | str | None = None,
    at: datetime | None = None,
) -> Nonconformance:
    """Decide what happens to the nonconforming work (use as is, rework, scrap a
    quantity), signed by a supervisor who re-enters the password. This is the only way a
    quality hold ends. The person who recorded the result cannot sign."""
    at = _when(at)
    if decision not in Disposition.values:
        raise ValidationFailed.field("decision", _("Choose a disposition."))
    if meaning not in SignatureMeaning.values:
        raise ValidationFailed.field("meaning", _("Choose what your signature means."))
    if not has_role(signer, Role.SUPERVISOR, Role.ADMIN):
        raise Conflict(_("Only a supervisor can sign a disposition."))
    if not password or not signer.check_password(password):
        raise ValidationFailed.field(
            "password", _("The password is not correct; nothing was signed.")
        )
    scrap = None
    if decision == Disposition.SCRAP:
        # Typed text strictly (ASCII digits, no exponent); a Decimal as it is.
        scrap = quantity if isinstance(quantity, Decimal | None) else parse_decimal(str(quantity))
        if scrap is None or not scrap.is_finite() or scrap <= 0 or scrap >= 10**11:
            raise ValidationFailed.field("quantity", _("Enter the quantity to scrap."))
    actor = Actor.of(signer)
    with transaction.atomic():
        wo = _lock_work_order(nonconformance.work_order_id)
        nc = (
            Nonconformance.objects.select_for_update()
            .select_related("result", "characteristic")
            .get(pk=nonconformance.pk)
        )
        if nc.status != NonconformanceStatus.OPEN:
            raise Conflict(
                _("%(nc)s was already dispositioned by %(who)s at %(when)s. Nothing was signed.")
                % {
                    "nc": nc.number,
                    "who": nc.closed_by_name,
                    "when": date_format(timezone.localtime(nc.closed_at), "H:i"),
                }
            )
        recorders = set(selectors.versions_of(nc.result).values_list("recorded_by_id", flat=True))
        if signer.pk in recorders:
            raise Conflict(
                _("You recorded this result; another person must sign its disposition."),
                errors={"signer": ["Recorder of the result."]},
            )
        nc.work_order = wo
        if nc.reaction == Reaction.HOLD_WORK_ORDER and wo.status == WO.ON_HOLD:
            lift_hold(wo, actor=actor, at=at, reason=f"{nc.number}: {Disposition(decision).label}")
        op = Operation.objects.select_related("work_center", "machine").get(pk=nc.operation_id)
        if decision == Disposition.SCRAP:
            if scrap > op.quantity_good:
                raise ValidationFailed.field(
                    "quantity",
                    _("Only %(n)s good reported on %(op)s.")
                    % {"n": display_quantity(op.quantity_good), "op": op.label},
                )
            report_quantity(
                op,
                actor=actor,
                good=-scrap,
                scrap=scrap,
                at=at,
                reason=f"{nc.number} scrapped",
                scrap_reason=SCRAP_BY_DISPOSITION
                if selectors.scrap_reason_exists(SCRAP_BY_DISPOSITION)
                else "",
            )
            nc.disposition_quantity = scrap
        elif decision == Disposition.REWORK:
            wo = _lock_work_order(wo.pk)
            ops = _lock_operations(wo)
            failed = next(o for o in ops if o.pk == op.pk)
            nc.rework_operation = _rework_operation(wo, ops, failed, actor=actor, at=at)
            _save_work_order(wo, None)
        nc.status = NonconformanceStatus.CLOSED
        nc.disposition = decision
        nc.disposition_comment = (comment or "").strip()
        nc.closed_at, nc.closed_by_name, nc.updated_at = at, actor.name[:150], at
        nc.save()
        Signature.objects.create(
            nonconformance=nc,
            signer=signer,
            signer_name=actor.name[:150],
            meaning=meaning,
            comment=nc.disposition_comment,
            signed_at=at,
            record_hash=record_hash(nc),
        )
        write_audit(
            actor,
            entity_type=EntityType.NONCONFORMANCE,
            entity_id=nc.pk,
            entity_label=nc.number,
            work_order=wo,
            action="disposition",
            at=at,
            from_state=NonconformanceStatus.OPEN,
            to_state=NonconformanceStatus.CLOSED,
            changes={"disposition": decision, "signature": meaning},
            reason=nc.disposition_comment,
        )
        _emit(nc, at)
        return nc


# --- SPC baseline -------------------------------------------------------------------------------


def freeze_baseline(series: str, *, actor: ActorLike, at: datetime | None = None) -> SpcBaseline:
    """Freeze the control limits computed from the samples the chart shows (the latest
    ``selectors.SPC_WINDOW``) as the series' baseline."""
    actor, at = Actor.of(actor), _when(at)
    with transaction.atomic():
        rows = selectors.series_rows(series)  # the samples the chart shows
        if len(rows) < 2:
            raise ValidationFailed(_("At least two samples are needed to compute limits."))
        limits = spc.compute_limits([values for _seq, values, *_rest in rows])
        baseline, _created = SpcBaseline.objects.select_for_update().update_or_create(
            series=series,
            defaults={
                "limits": spc.limits_to_dict(limits),
                "first_seq": rows[0][0],
                "last_seq": rows[-1][0],
                "frozen_at": at,
                "frozen_by_name": actor.name[:150],
            },
        )
        write_audit(
            actor,
            entity_type=EntityType.CHARACTERISTIC,
            entity_id=baseline.pk,
            entity_label=series[:100],
            work_order=None,
            action="freeze_limits",
            at=at,
            changes={
                "center": round(limits.center, 6),
                "ucl": round(limits.ucl, 6),
                "lcl": round(limits.lcl, 6),
                "samples": limits.n,
            },
        )
        return baseline


def release_baseline(series: str, *, actor: ActorLike, at: datetime | None = None) -> None:
    actor, at = Actor.of(actor), _when(at)
    with transaction.atomic():
        baseline = SpcBaseline.objects.select_for_update().filter(series=series).first()
        if baseline is None:
            raise Conflict(_("The limits of this characteristic are not frozen."))
        write_audit(
            actor,
            entity_type=EntityType.CHARACTERISTIC,
            entity_id=baseline.pk,
            entity_label=series[:100],
            work_order=None,
            action="release_limits",
            at=at,
            changes={"frozen_at": baseline.frozen_at.isoformat()},
        )
        baseline.delete()
