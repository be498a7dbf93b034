"""Recording results, the closed loop on out-of-spec values, corrections, dispositions under
signature, and what the production services refuse while quality holds the work."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from erp_sync.models import OutboxEvent
from mes import services
from mes.choices import OperationStatus, WorkOrderStatus
from mes.errors import Conflict, InvalidTransition, ValidationFailed
from mes.models import AuditRecord, ProductionConfirmation
from mes.quality import selectors
from mes.quality import services as quality
from mes.quality.choices import NonconformanceStatus, Verdict
from mes.quality.models import InspectionResult, Nonconformance, Signature

PASSWORD = "correct-horse-battery"


def first_op(wo):
    return wo.operations.order_by("sequence").first()


def started(wo, operator):
    op = first_op(wo)
    return services.start_operation(op, operator=operator)


def hole(op):
    return op.checks.get(code="HOLE-D")


def test_release_copies_the_plans_into_operations(quality_order, checked_routing):
    ops = list(quality_order.operations.order_by("sequence"))
    assert [c.code for c in ops[0].checks.all()] == ["HOLE-D"]
    assert [c.code for c in ops[1].checks.all()] == ["VISUAL"]
    assert not ops[2].checks.exists()
    check = ops[0].checks.get()
    assert check.series == f"{checked_routing.code}/10/HOLE-D"
    # Later edits of the plan never change work in flight.
    checked_routing.steps.get(sequence=10).checks.update(upper_limit=Decimal("9"))
    check.refresh_from_db()
    assert check.upper_limit == Decimal("8.05")


def test_first_piece_due_at_start_and_every_n_after_reports(quality_order, operator):
    op = started(quality_order, operator)
    assert [(d.check.code, d.sample.key) for d in selectors.due_checks(op)] == [("HOLE-D", "first")]
    quality.record_result(op, check=hole(op), values=["8.01"], actor=operator)
    op.refresh_from_db()
    assert selectors.due_checks(op) == []
    services.report_quantity(op, actor=operator, good=120)
    op.refresh_from_db()
    assert [d.sample.label for d in selectors.due_checks(op)] == ["piece 50", "piece 100"]


def test_time_based_sample_with_a_frozen_clock(quality_order, operator):
    op = first_op(quality_order)
    check = op.checks.get()
    type(check).objects.filter(pk=check.pk).update(
        first_piece=False, every_n=None, every_minutes=30
    )
    t0 = timezone.now() - timedelta(hours=2)
    op = services.start_operation(op, operator=operator, at=t0)
    assert selectors.due_checks(op, now=t0 + timedelta(minutes=29)) == []
    due = selectors.due_checks(op, now=t0 + timedelta(minutes=61))
    assert [d.sample.key for d in due] == ["time:30", "time:60"]
    # Paused time does not count.
    op = services.pause_operation(op, actor=operator, reason="Break", at=t0 + timedelta(minutes=40))
    op.refresh_from_db()
    assert [d.sample.key for d in selectors.due_checks(op, now=t0 + timedelta(hours=2))] == [
        "time:30"
    ]


def test_complete_refused_while_a_mandatory_check_is_due(quality_order, operator):
    op = started(quality_order, operator)
    services.report_quantity(op, actor=operator, good=100)
    with pytest.raises(InvalidTransition, match="check due: Hole diameter, first piece"):
        services.complete_operation(op, actor=operator)
    op.refresh_from_db()
    assert op.status == OperationStatus.RUNNING
    check = hole(op)
    for key in ("first", "piece:50", "piece:100"):
        quality.record_result(op, check=check, values=["8.00"], actor=operator, sample_key=key)
    services.complete_operation(op, actor=operator)
    op.refresh_from_db()
    assert op.status == OperationStatus.DONE


def test_last_piece_is_due_at_complete(quality_order, operator):
    op = first_op(quality_order)
    type(hole(op)).objects.filter(pk=hole(op).pk).update(
        first_piece=False, every_n=None, last_piece=True
    )
    op = services.start_operation(op, operator=operator)
    services.report_quantity(op, actor=operator, good=10)
    with pytest.raises(InvalidTransition, match="last piece"):
        services.complete_operation(op, actor=operator)
    quality.record_result(op, check=hole(op), values=["8.02"], actor=operator, sample_key="last")
    assert InspectionResult.objects.get().sample_label == "last piece"
    services.complete_operation(op, actor=operator)


def test_optional_checks_do_not_block_complete(quality_order, operator):
    op = first_op(quality_order)
    type(hole(op)).objects.filter(pk=hole(op).pk).update(mandatory=False)
    op = services.start_operation(op, operator=operator)
    services.complete_operation(op, actor=operator)


def test_results_are_stored_as_entered(quality_order, operator):
    op = started(quality_order, operator)
    result = quality.record_result(op, check=hole(op), values=["8,010"], actor=operator)
    result.refresh_from_db()
    assert result.values == ["8.010"]
    assert result.verdict == Verdict.PASS
    assert result.machine_id == op.machine_id
    assert result.recorded_by == operator
    with pytest.raises(TypeError):
        result.save()


@pytest.mark.parametrize("bad", ["", "abc", "8.0.1", "1e5", "NaN", "8" * 20])
def test_bad_values_are_refused_and_change_nothing(quality_order, operator, bad):
    op = started(quality_order, operator)
    audits = AuditRecord.objects.count()
    with pytest.raises(ValidationFailed):
        quality.record_result(op, check=hole(op), values=[bad], actor=operator)
    assert not InspectionResult.objects.exists()
    assert AuditRecord.objects.count() == audits


@pytest.mark.parametrize("bad", ["\u0668.\u0660\u0661", "\uff18.01"])  # Arabic-Indic, full-width
def test_values_are_ascii_digits(quality_order, operator, bad):
    """A regex's \\d and Decimal() read other scripts' digits; nobody types those on purpose."""
    op = started(quality_order, operator)
    with pytest.raises(ValidationFailed, match="is not a number"):
        quality.record_result(op, check=hole(op), values=[bad], actor=operator)
    assert not InspectionResult.objects.exists()


def test_out_of_spec_holds_the_operation_in_one_transaction(quality_order, operator):
    op = started(quality_order, operator)
    events = OutboxEvent.objects.count()
    result = quality.record_result(op, check=hole(op), values=["8.09"], actor=operator)
    assert result.verdict == Verdict.FAIL
    nc = Nonconformance.objects.get()
    assert nc.status == NonconformanceStatus.OPEN and nc.result == result
    assert "above the upper limit 8.05" in nc.description
    op.refresh_from_db()
    assert op.status == OperationStatus.PAUSED
    assert AuditRecord.objects.filter(action="pause", reason="Quality hold").exists()
    assert AuditRecord.objects.filter(action="open", entity_label=nc.number).exists()
    new = list(OutboxEvent.objects.order_by("id").values_list("event_type", flat=True))[events:]
    assert "quality.nonconformance" in new and "work_order.updated" in new
    payload = OutboxEvent.objects.get(event_type="quality.nonconformance").payload
    assert payload["number"] == nc.number and payload["values"] == ["8.09"]
    # The hold holds: resume and complete are refused until the disposition.
    with pytest.raises(InvalidTransition, match="quality hold"):
        services.resume_operation(op, actor=operator)
    with pytest.raises(InvalidTransition, match="quality hold"):
        services.complete_operation(op, actor=operator)


def test_nothing_of_it_when_the_service_refuses(quality_order, operator, monkeypatch):
    op = started(quality_order, operator)
    counts = (AuditRecord.objects.count(), OutboxEvent.objects.count())

    def broken(*args, **kwargs):
        raise Conflict("The outbox refused.")

    monkeypatch.setattr(quality, "_emit", broken)
    with pytest.raises(Conflict):
        quality.record_result(op, check=hole(op), values=["9.99"], actor=operator)
    op.refresh_from_db()
    assert op.status == OperationStatus.RUNNING
    assert not InspectionResult.objects.exists() and not Nonconformance.objects.exists()
    assert (AuditRecord.objects.count(), OutboxEvent.objects.count()) == counts


def test_hold_work_order_reaction(quality_order, operator, supervisor, quality_lead):
    op = started(quality_order, operator)
    quality.record_result(op, check=hole(op), values=["8.00"], actor=operator)
    services.complete_operation(op, actor=operator)
    op2 = quality_order.operations.get(sequence=20)
    op2 = services.start_operation(op2, operator=operator)
    visual = op2.checks.get()
    with pytest.raises(ValidationFailed, match="defect"):
        quality.record_result(op2, check=visual, values=["fail"], actor=operator)
    quality.record_result(op2, check=visual, values=["fail"], defect_code="DENT", actor=operator)
    quality_order.refresh_from_db()
    assert quality_order.status == WorkOrderStatus.ON_HOLD
    # Only the disposition ends the hold.
    with pytest.raises(InvalidTransition, match="held by quality"):
        services.release_work_order(quality_order, actor=supervisor)
    nc = Nonconformance.objects.get()
    quality.disposition_nonconformance(
        nc, decision="use_as_is", signer=quality_lead, password=PASSWORD, meaning="approved"
    )
    quality_order.refresh_from_db()
    assert quality_order.status == WorkOrderStatus.IN_PROGRESS


def test_disposition_needs_the_right_password(quality_order, operator, quality_lead):
    op = started(quality_order, operator)
    quality.record_result(op, check=hole(op), values=["7.90"], actor=operator)
    nc = Nonconformance.objects.get()
    with pytest.raises(ValidationFailed, match="password"):
        quality.disposition_nonconformance(
            nc, decision="use_as_is", signer=quality_lead, password="wrong", meaning="approved"
        )
    nc.refresh_from_db()
    assert nc.status == NonconformanceStatus.OPEN and not Signature.objects.exists()


def test_the_recorder_cannot_sign(quality_order, supervisor):
    op = started(quality_order, supervisor)
    quality.record_result(op, check=hole(op), values=["7.90"], actor=supervisor)
    nc = Nonconformance.objects.get()
    with pytest.raises(Conflict, match="another person must sign"):
        quality.disposition_nonconformance(
            nc, decision="use_as_is", signer=supervisor, password=PASSWORD, meaning="approved"
        )
    assert not Signature.objects.exists()


def test_an_operator_cannot_sign(quality_order, operator, other_operator):
    op = started(quality_order, operator)
    quality.record_result(op, check=hole(op), values=["7.90"], actor=operator)
    other_operator.set_password(PASSWORD)
    other_operator.save()
    with pytest.raises(Conflict, match="supervisor"):
        quality.disposition_nonconformance(
            Nonconformance.objects.get(),
            decision="use_as_is",
            signer=other_operator,
            password=PASSWORD,
            meaning="approved",
        )


def test_signature_turns_invalid_when_its_record_changes(quality_order, operator, quality_lead):
    op = started(quality_order, operator)
    result = quality.record_result(op, check=hole(op), values=["8.07"], actor=operator)
    nc = quality.disposition_nonconformance(
        Nonconformance.objects.get(),
        decision="use_as_is",
        signer=quality_lead,
        password=PASSWORD,
        meaning="approved",
        comment="Within the customer's deviation D-17.",
    )
    signature = nc.signatures.get()
    assert signature.signer_name == "Quinn Meyer" and signature.meaning == "approved"
    assert quality.signature_is_valid(signature)
    quality.correct_result(result, values=["8.03"], reason="Gauge misread", actor=operator)
    signature.refresh_from_db()
    assert not quality.signature_is_valid(signature)


def test_disposition_resumes_nothing_but_allows_resume(quality_order, operator, quality_lead):
    op = started(quality_order, operator)
    quality.record_result(op, check=hole(op), values=["8.07"], actor=operator)
    quality.disposition_nonconformance(
        Nonconformance.objects.get(),
        decision="use_as_is",
        signer=quality_lead,
        password=PASSWORD,
        meaning="approved",
    )
    op.refresh_from_db()
    assert op.status == OperationStatus.PAUSED
    services.resume_operation(op, actor=operator)
    with pytest.raises(Conflict, match="already dispositioned by Quinn Meyer"):
        quality.disposition_nonconformance(
            Nonconformance.objects.get(),
            decision="scrap",
            quantity="1",
            signer=quality_lead,
            password=PASSWORD,
            meaning="approved",
        )


@pytest.mark.parametrize("quantity", ["1_0", "\u0665"])  # Decimal() read 10 and 5
def test_a_scrap_quantity_is_ascii_digits(quality_order, operator, quality_lead, quantity):
    op = started(quality_order, operator)
    quality.record_result(op, check=hole(op), values=["7.90"], actor=operator)
    with pytest.raises(ValidationFailed, match="quantity to scrap"):
        quality.disposition_nonconformance(
            Nonconformance.objects.get(),
            decision="scrap",
            quantity=quantity,
            signer=quality_lead,
            password=PASSWORD,
            meaning="rejected",
        )
    assert Nonconformance.objects.get().status == NonconformanceStatus.OPEN
    assert not Signature.objects.exists()


def test_scrap_disposition_moves_good_to_scrap_with_its_reason(
    quality_order, operator, quality_lead
):
    op = started(quality_order, operator)
    quality.record_result(op, check=hole(op), values=["8.00"], actor=operator)
    services.report_quantity(op, actor=operator, good=30)
    quality.record_result(op, check=hole(op), values=["8.00"], actor=operator, sample_key="extra:1")
    result = quality.record_result(
        op, check=hole(op), values=["8.2"], actor=operator, sample_key="extra:2"
    )
    assert result.verdict == Verdict.FAIL
    quality.disposition_nonconformance(
        Nonconformance.objects.get(),
        decision="scrap",
        quantity="5",
        signer=quality_lead,
        password=PASSWORD,
        meaning="rejected",
    )
    op.refresh_from_db()
    assert (op.quantity_good, op.quantity_scrap) == (Decimal(25), Decimal(5))
    last = ProductionConfirmation.objects.order_by("seq").last()
    assert last.scrap_reasons == [{"code": "QUALITY", "quantity": 5}]


def test_rework_disposition_adds_an_operation_after_the_failed_one(
    quality_order, operator, quality_lead
):
    op = started(quality_order, operator)
    quality.record_result(op, check=hole(op), values=["8.2"], actor=operator)
    nc = quality.disposition_nonconformance(
        Nonconformance.objects.get(),
        decision="rework",
        signer=quality_lead,
        password=PASSWORD,
        meaning="approved",
    )
    assert nc.rework_operation.sequence == 15
    assert nc.rework_operation.name.startswith("Rework: ")
    services.resume_operation(op, actor=operator)
    services.complete_operation(op, actor=operator)
    nc.rework_operation.refresh_from_db()
    assert nc.rework_operation.status == OperationStatus.READY


def test_corrections_keep_the_original_visible(quality_order, operator):
    op = started(quality_order, operator)
    first = quality.record_result(op, check=hole(op), values=["8.01"], actor=operator)
    with pytest.raises(ValidationFailed, match="reason"):
        quality.correct_result(first, values=["8.02"], reason=" ", actor=operator)
    second = quality.correct_result(first, values=["8.02"], reason="Typo", actor=operator)
    first.refresh_from_db()
    assert (first.values, first.is_current) == (["8.01"], False)
    assert (second.values, second.version, second.supersedes) == (["8.02"], 2, first)
    with pytest.raises(Conflict, match="corrected by"):
        quality.correct_result(first, values=["8.03"], reason="again", actor=operator)
    assert selectors.due_checks(op) == []


def test_a_recorded_sample_is_not_recorded_twice(quality_order, operator):
    op = started(quality_order, operator)
    quality.record_result(op, check=hole(op), values=["8.01"], actor=operator, sample_key="first")
    with pytest.raises(Conflict, match="already recorded"):
        quality.record_result(
            op, check=hole(op), values=["8.02"], actor=operator, sample_key="first"
        )


def test_unknown_scrap_reason_is_refused(quality_order, operator):
    op = started(quality_order, operator)
    with pytest.raises(ValidationFailed, match="Unknown scrap reason"):
        services.report_quantity(op, actor=operator, scrap=1, scrap_reason="NOPE")
    services.report_quantity(op, actor=operator, scrap=2, scrap_reason="DIM")
    last = ProductionConfirmation.objects.order_by("seq").last()
    assert last.scrap_reasons == [{"code": "DIM", "quantity": 2}]
