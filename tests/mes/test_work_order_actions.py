"""Release, hold, release from hold, cancel and priority on the work order page: only for
supervisors, planners and admins, only what the status allows, through the services; every
refusal, stale page and forged answer is a message in words, never a server error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mes import services
from mes.models import AuditRecord, WorkOrder
from mes.quality import services as quality
from mes.quality.choices import CheckKind, Reaction
from mes.scheduling.services import apply_schedule
from shopfloor.plc.services import actor_for
from tests.factories import UserFactory, make_routing, make_work_order
from tests.quality.conftest import add_check
from tests.terminal.conftest import forms, text


def url(wo: WorkOrder) -> str:
    return reverse("work_order_detail", args=[wo.number])


def fresh(wo: WorkOrder) -> WorkOrder:
    return WorkOrder.objects.get(pk=wo.pk)


def shown_actions(client: Client, wo: WorkOrder) -> dict[str, dict]:
    """The action forms the page offers, by action, with the hidden fields a browser posts."""
    page = client.get(url(wo))
    assert page.status_code == 200
    return {f["hidden"]["action"]: f["hidden"] for f in forms(page) if "action" in f["hidden"]}


def post_shown(client: Client, wo: WorkOrder, action: str, **fields) -> str:
    """Post the form of ``action`` as the page shows it; the visible text of the page after."""
    hidden = shown_actions(client, wo)[action]
    response = client.post(url(wo), {**hidden, **fields}, follow=True)
    assert response.status_code == 200
    return text(response)


@pytest.fixture
def sam(client, supervisor):
    client.force_login(supervisor)
    return client


@pytest.fixture
def planned(supervisor):
    return make_work_order(actor=supervisor, release=False, number="WO-1012")


@pytest.fixture
def released(work_order):
    return work_order


def running(wo: WorkOrder, operator) -> WorkOrder:
    op = wo.operations.get(sequence=10)
    services.start_operation(op, operator=operator)
    return fresh(wo)


def held(wo: WorkOrder, supervisor) -> WorkOrder:
    return services.hold_work_order(wo, actor=supervisor, reason="Material missing")


# --- Who may ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "persona,allowed",
    [("operator", False), ("supervisor", True), ("planner", True), ("admin_user", True)],
)
def test_supervisors_planners_and_admins_only(client, released, persona, allowed, request):
    client.force_login(request.getfixturevalue(persona))
    page = client.get(url(released))
    assert page.status_code == 200
    assert (f"Put {released.number} on hold" in text(page)) is allowed
    response = client.post(
        url(released), {"action": "hold", "reason": "Crash", "version": released.version}
    )
    assert response.status_code == (302 if allowed else 403)
    assert (fresh(released).status == "on_hold") is allowed


def test_a_user_without_a_role_sees_no_actions_and_is_refused(client, released):
    client.force_login(UserFactory(username="visitor"))
    assert shown_actions(client, released) == {}
    response = client.post(
        url(released), {"action": "cancel", "reason": "x", "version": released.version}
    )
    assert response.status_code == 403
    assert fresh(released).status == "released"


def test_signed_out_posts_go_to_sign_in(client, released):
    response = client.post(url(released), {"action": "hold", "reason": "x"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert fresh(released).status == "released"


def test_forms_carry_a_csrf_token(supervisor, released):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(supervisor)
    page = strict.get(url(released))
    hidden = next(f["hidden"] for f in forms(page) if f["hidden"].get("action") == "hold")
    assert hidden["csrfmiddlewaretoken"]
    without = {k: v for k, v in hidden.items() if k != "csrfmiddlewaretoken"}
    assert strict.post(url(released), {**without, "reason": "x"}).status_code == 403
    assert fresh(released).status == "released"
    assert strict.post(url(released), {**hidden, "reason": "x"}).status_code == 302
    assert fresh(released).status == "on_hold"


# --- What the status allows --------------------------------------------------------------------


def test_the_page_offers_only_what_the_status_allows(sam, supervisor, operator):
    planned = make_work_order(actor=supervisor, release=False)
    assert set(shown_actions(sam, planned)) == {"release", "cancel", "priority"}
    released = make_work_order(actor=supervisor)
    assert set(shown_actions(sam, released)) == {"hold", "cancel", "priority"}
    in_progress = running(make_work_order(actor=supervisor), operator)
    assert set(shown_actions(sam, in_progress)) == {"hold", "priority"}
    on_hold = held(make_work_order(actor=supervisor), supervisor)
    assert set(shown_actions(sam, on_hold)) == {"resume", "cancel", "priority"}
    cancelled = services.cancel_work_order(
        make_work_order(actor=supervisor), actor=supervisor, reason="ERP"
    )
    assert shown_actions(sam, cancelled) == {}
    assert "Actions" not in text(sam.get(url(cancelled)))


def test_completed_orders_offer_nothing(sam, supervisor, operator):
    wo = make_work_order(actor=supervisor, steps=1, quantity=5)
    op = services.start_operation(wo.operations.get(), operator=operator)
    services.report_quantity(op, actor=operator, good=5)
    services.complete_operation(op, actor=operator)
    assert fresh(wo).status == "completed"
    assert shown_actions(sam, wo) == {}


# --- Each action ------------------------------------------------------------------------------


def test_release_a_planned_order(sam, planned):
    page = post_shown(sam, planned, "release")
    assert "WO-1012 released." in page
    wo = fresh(planned)
    assert wo.status == "released"
    assert wo.operations.get(sequence=10).status == "ready"
    assert "Released: Planned → Released" in page  # the history, in words
    assert "Sam Weber" in page


def test_hold_with_a_reason_pauses_running_operations(sam, released, operator):
    wo = running(released, operator)
    page = post_shown(sam, wo, "hold", reason="  Material missing  ")
    assert f"{wo.number} put on hold: Material missing." in page
    wo = fresh(wo)
    assert wo.status == "on_hold" and wo.held_from_status == "in_progress"
    assert wo.operations.get(sequence=10).status == "paused"
    record = AuditRecord.objects.filter(work_order=wo, action="hold").get()
    assert record.reason == "Material missing" and record.actor_name == "Sam Weber"


def test_hold_without_a_reason_is_refused_in_words(sam, released):
    page = post_shown(sam, released, "hold", reason="   ")
    assert "A reason is required to put a work order on hold." in page
    assert fresh(released).status == "released"


def test_release_from_hold_goes_back_to_where_it_was(sam, released, operator, supervisor):
    wo = held(running(released, operator), supervisor)
    page = post_shown(sam, wo, "resume")
    assert f"{wo.number} is released from hold: in progress again." in page
    assert fresh(wo).status == "in_progress"


def test_cancel_asks_in_words_and_needs_a_reason(sam, planned):
    page = text(sam.get(url(planned)))
    assert "Cancel WO-1012? This cannot be undone." in page
    assert "Yes, cancel WO-1012" in page
    refused = post_shown(sam, planned, "cancel", reason="")
    assert "A reason is required to cancel a work order." in refused
    assert fresh(planned).status == "planned"
    done = post_shown(sam, planned, "cancel", reason="Customer withdrew the order")
    assert "WO-1012 cancelled." in done
    assert fresh(planned).status == "cancelled"
    assert "Cancelled: Planned → Cancelled" in done and "Customer withdrew the order" in done


def test_priority_rush_and_back(sam, released):
    page = post_shown(sam, released, "priority")  # the page offers rush for a normal order
    assert f"{released.number} is now a rush order." in page
    assert fresh(released).priority == "rush"
    assert "Priority: Normal → Rush" in page
    page = post_shown(sam, released, "priority")  # and normal for a rush order
    assert f"{released.number} is back to normal priority." in page
    assert fresh(released).priority == "normal"


def test_the_same_priority_again_changes_nothing(sam, released):
    hidden = shown_actions(sam, released)["priority"]
    response = sam.post(url(released), {**hidden, "priority": "normal"}, follow=True)
    assert "already has that priority; nothing was changed." in text(response)
    assert AuditRecord.objects.filter(work_order=released, action="update").count() == 0


# --- Refusals, stale pages, forged input --------------------------------------------------------


def test_a_refusal_of_the_service_is_a_message(sam, released, operator):
    """Cancel is not offered for an order in progress; posted anyway, the service refuses."""
    wo = running(released, operator)
    response = sam.post(
        url(wo), {"action": "cancel", "reason": "x", "version": wo.version}, follow=True
    )
    assert response.status_code == 200
    assert f"{wo.number} is in progress; it cannot be cancelled." in text(response)
    assert fresh(wo).status == "in_progress"


def test_a_quality_hold_is_released_only_by_a_disposition(sam, supervisor, operator):
    routing = make_routing(1)
    add_check(
        routing.steps.get(),
        code="VISUAL",
        name="Visual inspection",
        kind=CheckKind.ATTRIBUTE,
        nominal=None,
        lower_limit=None,
        upper_limit=None,
        unit="",
        defect_codes=["DENT"],
        every_n=None,
        reaction=Reaction.HOLD_WORK_ORDER,
    )
    wo = make_work_order(actor=supervisor, routing=routing)
    op = services.start_operation(wo.operations.get(), operator=operator)
    quality.record_result(
        op, check=op.checks.get(), values=["fail"], defect_code="DENT", actor=operator
    )
    assert fresh(wo).status == "on_hold"
    assert set(shown_actions(sam, wo)) == {"cancel", "priority"}  # no release from hold
    page = text(sam.get(url(wo)))
    assert "Held by quality: NC-" in page and "A signed disposition releases it." in page
    # Posted anyway: the service refuses, in words.
    response = sam.post(url(wo), {"action": "resume", "version": fresh(wo).version}, follow=True)
    assert "is held by quality (NC-" in text(response)
    assert "a signed disposition releases it." in text(response)
    assert fresh(wo).status == "on_hold"


def test_a_stale_page_tells_who_did_what(client, sam, released, planner):
    hidden = shown_actions(sam, released)["cancel"]
    other = Client()
    other.force_login(planner)
    post_shown(other, released, "hold", reason="Die cracked")

    response = sam.post(url(released), {**hidden, "reason": "Not needed"}, follow=True)
    shown = text(response)
    hold = AuditRecord.objects.get(work_order=released, action="hold")
    at = f"{timezone.localtime(hold.occurred_at):%H:%M}"
    assert f"{released.number} was put on hold by Pia Novak at {at}." in shown
    assert "Nothing was changed; look again." in shown
    assert fresh(released).status == "on_hold"
    assert not AuditRecord.objects.filter(work_order=released, action="cancel").exists()


def test_counts_and_replans_do_not_make_the_page_stale(sam, released, operator):
    """The version moves with every PLC count and re-plan; the page is not out of date for
    that, or a running order could never be held."""
    wo = running(released, operator)
    hidden = shown_actions(sam, wo)["hold"]
    op = wo.operations.get(sequence=10)
    services.report_quantity(op, actor=actor_for(op.machine.code), good=12)
    apply_schedule(
        wo.pk, projected_end=timezone.now() + timedelta(hours=9), planned={}, reason="M-03 down"
    )
    assert fresh(wo).version > int(hidden["version"])

    response = sam.post(url(wo), {**hidden, "reason": "Material missing"}, follow=True)
    assert f"{wo.number} put on hold: Material missing." in text(response)
    assert fresh(wo).status == "on_hold"


def test_the_order_started_meanwhile_is_a_change_of_the_order(sam, released, operator):
    hidden = shown_actions(sam, released)["priority"]
    op = released.operations.get(sequence=10)
    services.start_operation(op, operator=operator)  # also moves the order to in progress
    response = sam.post(url(released), hidden, follow=True)
    # The order itself changed (released -> in progress, by Ana): out of date.
    assert f"{released.number} was started by Ana Lopez" in text(response)
    assert fresh(released).priority == "normal"


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"action": "explode"}, "Nothing was asked; nothing was changed."),
        ({"action": ""}, "Nothing was asked; nothing was changed."),
        ({"action": "hold", "version": ""}, "The form was incomplete"),
        ({"action": "hold", "version": "abc"}, "The form was incomplete"),
        ({"action": "hold", "version": "-1"}, "The form was incomplete"),
        ({"action": "hold", "version": "9" * 40}, "The form was incomplete"),
        ({"action": "hold", "version": "٣"}, "The form was incomplete"),
        ({"action": "priority", "priority": "urgent"}, "Choose a priority: normal or rush."),
        ({"action": "priority", "priority": ""}, "Choose a priority: normal or rush."),
        ({"action": "hold", "seen": "x"}, "put on hold"),
    ],
)
def test_forged_input_gets_a_message_never_a_500(sam, released, fields, message):
    form = {"version": released.version, "reason": "Forged", **fields}
    response = sam.post(url(released), form, follow=True)
    assert response.status_code == 200
    assert message in text(response)


def test_a_forged_old_version_with_no_change_since_is_a_message_too(sam, released, supervisor):
    """An old version and no ``seen``: every change of the order counts, so it is stale."""
    services.update_work_order(released, actor=supervisor, priority="rush")
    response = sam.post(url(released), {"action": "hold", "reason": "x", "version": "1"})
    page = text(sam.get(url(released)))
    assert response.status_code == 302
    assert "Nothing was changed; look again." in page
    assert fresh(released).status == "released"


def test_a_very_long_reason_is_cut_not_a_500(sam, released):
    page = post_shown(sam, released, "hold", reason="x" * 5000)
    assert fresh(released).status == "on_hold"
    assert len(AuditRecord.objects.get(work_order=released, action="hold").reason) == 500
    assert "put on hold" in page


def test_an_unknown_order_is_404(sam):
    response = sam.post(reverse("work_order_detail", args=["NOPE"]), {"action": "hold"})
    assert response.status_code == 404


def test_other_methods_are_not_allowed(sam, released):
    assert sam.put(url(released)).status_code == 405
    assert sam.delete(url(released)).status_code == 405
