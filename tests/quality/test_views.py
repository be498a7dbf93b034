"""The terminal's check screen and the supervisors' quality pages, as a browser uses them."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from mes import services
from mes.choices import OperationStatus
from mes.quality import services as quality
from mes.quality.models import InspectionResult, Nonconformance, Signature
from tests.terminal.conftest import bind, first_op, forms, sign_in, text

PASSWORD = "correct-horse-battery"


@pytest.fixture
def terminal(quality_order, operator):
    client = bind(Client(), first_op(quality_order).work_center)
    assert sign_in(client, "1001", "1234").status_code == 302
    return client


@pytest.fixture
def running_op(quality_order, operator):
    return services.start_operation(first_op(quality_order), operator=operator)


def check_url(op):
    return reverse("terminal:check", args=[op.pk])


def record(client, op, value, **extra):
    page = client.get(check_url(op))
    (form,) = [f for f in forms(page) if f["action"] == check_url(op)]
    return client.post(check_url(op), {**form["hidden"], "value-0": value, **extra})


def test_the_operation_screen_says_a_check_is_due_above_everything(terminal, running_op):
    response = terminal.get(reverse("terminal:operation", args=[running_op.pk]))
    assert "Check due: Hole diameter, first piece" in text(response)
    body = response.content.decode()
    assert body.index('id="op-checks"') < body.index("<h1>")
    assert "Record check" in text(response)


def test_the_check_screen_shows_the_spec_and_labels_the_field(terminal, running_op):
    page = terminal.get(check_url(running_op))
    body = page.content.decode()
    assert '<label for="value-0">Hole diameter</label>' in body
    assert "min 7.95 \u2013 max 8.05 mm" in text(page)


def test_an_in_spec_value_shows_the_verdict_in_words_and_symbol(terminal, running_op):
    response = record(terminal, running_op, "8.01")
    page = text(response)
    assert "✔ In spec: Hole diameter 8.01 mm" in page
    assert InspectionResult.objects.get().values == ["8.01"]
    # Nothing is due any more: the banner is gone.
    op_page = text(terminal.get(reverse("terminal:operation", args=[running_op.pk])))
    assert "Check due" not in op_page


def test_an_out_of_spec_value_holds_and_says_so(terminal, running_op):
    page = text(record(terminal, running_op, "8.09"))
    assert "✖ Out of spec:" in page and "quality hold" in page
    nc = Nonconformance.objects.get()
    assert nc.number in page
    running_op.refresh_from_db()
    assert running_op.status == OperationStatus.PAUSED
    op_page = text(terminal.get(reverse("terminal:operation", args=[running_op.pk])))
    assert "Quality hold" in op_page and nc.number in op_page


def test_a_bad_value_gets_a_message_and_changes_nothing(terminal, running_op):
    page = text(record(terminal, running_op, "8,0,1"))
    assert "is not a number" in page
    assert not InspectionResult.objects.exists()


def test_complete_is_refused_in_words_while_a_check_is_due(terminal, running_op):
    from tests.terminal.conftest import act

    response = act(terminal, running_op, "complete", confirmed="1")
    assert "cannot be completed: check due: Hole diameter, first piece" in text(response)


def test_a_resubmitted_form_records_once(terminal, running_op):
    page = terminal.get(check_url(running_op))
    (form,) = [f for f in forms(page) if f["action"] == check_url(running_op)]
    data = {**form["hidden"], "value-0": "8.00"}
    terminal.post(check_url(running_op), data)
    again = terminal.post(check_url(running_op), data)
    assert "Already recorded" in text(again)
    assert InspectionResult.objects.count() == 1


def test_a_correction_keeps_the_original(terminal, running_op):
    record(terminal, running_op, "8.01")
    first = InspectionResult.objects.get()
    page = terminal.get(check_url(running_op) + f"?correct={first.pk}")
    (form,) = [f for f in forms(page) if f["action"] == check_url(running_op)]
    response = terminal.post(
        check_url(running_op), {**form["hidden"], "value-0": "8.02", "reason": "Misread"}
    )
    assert "version 2" in text(response)
    assert list(InspectionResult.objects.order_by("seq").values_list("values", "is_current")) == [
        (["8.01"], False),
        (["8.02"], True),
    ]


# --- Supervisors' pages -------------------------------------------------------------------------


@pytest.fixture
def open_nc(running_op, operator):
    quality.record_result(
        running_op, check=running_op.checks.get(), values=["8.09"], actor=operator
    )
    return Nonconformance.objects.get()


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "persona, status", [("supervisor", 200), ("planner", 200), ("operator", 403)]
)
def test_who_sees_the_quality_pages(request, open_nc, persona, status):
    client = signed_in(request.getfixturevalue(persona))
    for url in (
        reverse("quality:nonconformances"),
        reverse("quality:nonconformance", args=[open_nc.number]),
        reverse("quality:spc"),
    ):
        assert client.get(url).status_code == status, url
    assert Client().get(reverse("quality:spc")).status_code == 302  # to sign-in


def test_nonconformance_list_and_detail(supervisor, open_nc):
    client = signed_in(supervisor)
    listing = text(client.get(reverse("quality:nonconformances")))
    assert open_nc.number in listing and "above the upper limit 8.05" in listing
    detail = text(client.get(reverse("quality:nonconformance", args=[open_nc.number])))
    assert "8.09 mm" in detail and "Sign disposition" in detail


def test_signing_a_disposition_on_the_page(quality_lead, open_nc, running_op):
    client = signed_in(quality_lead)
    url = reverse("quality:nonconformance", args=[open_nc.number])
    form = {"decision": "use_as_is", "meaning": "approved", "comment": "Deviation D-1"}
    wrong = client.post(url, {**form, "password": "nope"}, follow=True)
    assert "The password is not correct; nothing was signed." in text(wrong)
    assert not Signature.objects.exists()
    done = client.post(url, {**form, "password": PASSWORD}, follow=True)
    page = text(done)
    assert "Quinn Meyer · Approved" in page and "valid: the record is as signed" in page
    open_nc.refresh_from_db()
    assert open_nc.status == "closed"
    services.resume_operation(running_op, actor=quality_lead)


def test_a_planner_cannot_sign(planner, open_nc):
    client = signed_in(planner)
    url = reverse("quality:nonconformance", args=[open_nc.number])
    response = client.post(
        url, {"decision": "use_as_is", "meaning": "approved", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert not Signature.objects.exists()


def test_spc_pages_show_limits_and_violations(supervisor, quality_order, checked_routing, operator):
    op = services.start_operation(first_op(quality_order), operator=operator)
    check = op.checks.get()
    values = [
        "8.000",
        "8.004",
        "7.996",
        "8.002",
        "7.998",
        "8.001",
        "7.999",
        "8.003",
        "8.030",
        "8.032",
    ]
    for i, value in enumerate(values, start=1):
        quality.record_result(
            op, check=check, values=[value], actor=operator, sample_key=f"extra:{i}"
        )
    client = signed_in(supervisor)
    listing = text(client.get(reverse("quality:spc")))
    assert "Hole diameter" in listing and "violations (rules 1" in listing
    url = reverse("quality:spc_detail", args=[checked_routing.code, 10, "HOLE-D"])
    page = client.get(url)
    body = page.content.decode()
    assert page.status_code == 200 and body.count("<svg") == 2
    assert "UCL" in body and "Rule" in text(page)
    # Freezing keeps the limits; more data does not move them.
    assert client.post(url + "baseline/", {"action": "freeze"}).status_code == 302
    frozen = text(client.get(url))
    assert "frozen by Sam Weber" in frozen
    assert client.post(url + "baseline/", {"action": "release"}).status_code == 302
    assert "computed from the samples shown" in text(client.get(url))


def test_unknown_series_is_404(supervisor):
    assert signed_in(supervisor).get("/quality/spc/NOPE/10/X/").status_code == 404


def test_the_check_screens_speak_german(terminal, running_op):
    terminal.post(reverse("set_language"), {"language": "de", "next": "/terminal/"})
    page = text(terminal.get(reverse("terminal:operation", args=[running_op.pk])))
    assert "Prüfung fällig: Hole diameter, erstes Teil" in page and "Prüfung erfassen" in page
    verdict = text(record(terminal, running_op, "8.10"))
    assert "✖ Außer Toleranz:" in verdict and "Qualität gesperrt" in verdict


def test_the_last_piece_is_offered_when_nothing_else_is_due(terminal, quality_order, operator):
    op = first_op(quality_order)
    check = op.checks.get()
    type(check).objects.filter(pk=check.pk).update(first_piece=False, every_n=None, last_piece=True)
    op = services.start_operation(op, operator=operator)
    services.report_quantity(op, actor=operator, good=10)
    page = text(terminal.get(check_url(op)))
    assert "Hole diameter · last piece" in page
    record(terminal, op, "8.00")
    assert InspectionResult.objects.get().sample_key == "last"
    services.complete_operation(op, actor=operator)
    # An extra sample is there for the asking.
    extra = text(terminal.get(check_url(op) + f"?check={check.pk}&extra=1"))
    assert "extra sample" in extra


def test_forged_ids_get_a_message_not_a_500(terminal, running_op):
    url = check_url(running_op)
    assert terminal.get(url + "?correct=abc").status_code == 200
    refused = terminal.post(url, {"check": "x", "value-0": "8"})
    assert refused.status_code == 200 and "Choose a check." in text(refused)
    check = running_op.checks.get()
    forged = terminal.post(url, {"check": check.pk, "correct": "²", "value-0": "8", "reason": "r"})
    assert forged.status_code == 404
    assert not InspectionResult.objects.exists()
