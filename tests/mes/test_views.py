"""Signed-in pages: home, work order list (filters, paging, htmx partial), detail."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from mes import services
from mes.formats import display_when
from mes.scheduling.services import apply_schedule
from shopfloor.plc.services import actor_for

from ..factories import make_routing, make_work_order
from ..terminal.conftest import text as visible_text


@pytest.fixture
def signed_in(client, planner):
    client.force_login(planner)
    return client


@pytest.mark.parametrize(
    "name,args", [("home", []), ("work_order_list", []), ("work_order_detail", ["WO-X"])]
)
def test_pages_need_sign_in(client, db, name, args):
    response = client.get(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_page_signs_in_and_rejects_bad_password(client, planner):
    bad = client.post(reverse("login"), {"username": "pia", "password": "wrong"})
    assert bad.status_code == 200
    assert "did not match" in bad.content.decode()
    good = client.post(reverse("login"), {"username": "pia", "password": "correct-horse-battery"})
    assert good.status_code == 302 and good["Location"] == reverse("home")


def test_home_counts_orders_by_status_and_late(signed_in, supervisor):
    make_work_order(actor=supervisor, release=False)
    make_work_order(actor=supervisor, due_in_days=-1)  # released and late
    body = signed_in.get(reverse("home")).content.decode()
    assert "1 work order is late" in body
    assert f'href="{reverse("work_order_list")}?status=planned"' in body


def test_home_links_everything_for_staff(client, admin_user):
    client.force_login(admin_user)
    body = client.get(reverse("home")).content.decode()
    for name in (
        "admin:mes_site_changelist",
        "admin:mes_auditrecord_changelist",
        "admin:erp_sync_outboxevent_changelist",
        "work_order_list",
    ):
        assert f'href="{reverse(name)}' in body


def test_list_filters_by_status_product_and_due(signed_in, supervisor):
    routing = make_routing(2)
    planned = make_work_order(actor=supervisor, release=False, routing=routing)
    late = make_work_order(actor=supervisor, due_in_days=-2)
    later = make_work_order(actor=supervisor, due_in_days=30)
    url = reverse("work_order_list")

    def numbers(query):
        response = signed_in.get(url, query)
        assert response.status_code == 200
        return {wo.number for wo in response.context["page"]}

    assert numbers({}) == {planned.number, late.number, later.number}
    assert numbers({"status": "planned"}) == {planned.number}
    assert numbers({"status": ["planned", "released"]}) == {
        planned.number,
        late.number,
        later.number,
    }
    assert numbers({"product": routing.product.code}) == {planned.number}
    assert numbers({"due": "late"}) == {late.number}
    assert numbers({"due": "later"}) == {later.number}
    assert numbers({"q": late.number.lower()}) == {late.number}


def test_list_ignores_unknown_filter_values_with_a_message(signed_in, work_order):
    response = signed_in.get(reverse("work_order_list"), {"status": "exploded"})
    assert response.status_code == 200
    assert "were not understood" in response.content.decode()
    assert [wo.number for wo in response.context["page"]] == [work_order.number]


def test_list_query_count_does_not_grow_with_rows(signed_in, supervisor, django_assert_num_queries):
    routing = make_routing(1)
    make_work_order(actor=supervisor, routing=routing)
    url = reverse("work_order_list")
    signed_in.get(url)  # warm the session/auth caches
    with django_assert_num_queries(5) as one:
        signed_in.get(url)
    for _ in range(5):
        make_work_order(actor=supervisor, routing=routing)
    with django_assert_num_queries(len(one.captured_queries)):
        signed_in.get(url)


def test_list_pages_and_htmx_partial(signed_in, supervisor, settings):
    settings.MES_PAGE_SIZE = 2
    routing = make_routing(1)
    for _ in range(3):
        make_work_order(actor=supervisor, routing=routing)
    page2 = signed_in.get(reverse("work_order_list"), {"page": 2, "status": "released"})
    assert len(page2.context["page"]) == 1
    assert "Page 2 of 2" in page2.content.decode()
    partial = signed_in.get(reverse("work_order_list"), HTTP_HX_REQUEST="true")
    assert "<html" not in partial.content.decode()
    assert "<table" in partial.content.decode()


def test_detail_shows_operations_quantities_and_history(signed_in, work_order, operator):
    op = work_order.operations.get(sequence=10)
    op = services.start_operation(op, operator=operator)
    services.report_quantity(op, actor=operator, good=40, scrap=2)
    services.pause_operation(op, actor=operator, reason="Tool change")
    body = signed_in.get(reverse("work_order_detail", args=[work_order.number])).content.decode()
    for text in (
        "Paused",
        "Tool change",
        "Ana Lopez",
        "+40 good, +2 scrap reported",
        "Started: Released → In progress",
    ):
        assert text in body
    assert "quantity_good" not in body and "in_progress</td>" not in body
    assert body.count('class="status status-pending"') == 2


def test_detail_unknown_number_is_404(signed_in):
    assert signed_in.get(reverse("work_order_detail", args=["NOPE"])).status_code == 404


def test_detail_query_count_does_not_grow_with_operations(
    signed_in, supervisor, django_assert_num_queries
):
    small = make_work_order(actor=supervisor, steps=1)
    big = make_work_order(actor=supervisor, steps=6)
    signed_in.get(reverse("work_order_detail", args=[small.number]))
    # session, user, order, operations, history, results, nonconformances, and the role
    # check that decides whether the actions are shown.
    with django_assert_num_queries(8) as first:
        signed_in.get(reverse("work_order_detail", args=[small.number]))
    with django_assert_num_queries(len(first.captured_queries)):
        signed_in.get(reverse("work_order_detail", args=[big.number]))


def test_late_marker_and_rush_marker_carry_words(signed_in, supervisor):
    wo = make_work_order(actor=supervisor, due_in_days=-1)
    services.update_work_order(wo, actor=supervisor, priority="rush")
    body = signed_in.get(reverse("work_order_list")).content.decode()
    assert "late</span>" in body and "Rush</span>" in body
    assert '<span class="status status-released">Released</span>' in body


def test_the_schedule_shows_projected_end_and_orders_at_risk(signed_in, supervisor):
    from datetime import timedelta

    from django.utils import timezone

    from mes.scheduling.services import replan

    # 100 parts at 12.5 s plus 300 s setup per step: 3 steps end after about 77 minutes.
    tight = make_work_order(actor=supervisor, steps=3)
    services.update_work_order(
        tight, actor=supervisor, due_date=timezone.now() + timedelta(minutes=30)
    )
    relaxed = make_work_order(actor=supervisor, steps=3)
    replan(reason="test")

    home = signed_in.get(reverse("home")).content.decode()
    assert "1 work order is projected to end after its due date" in home
    listed = signed_in.get(reverse("work_order_list"), {"due": "at_risk"}).content.decode()
    assert tight.number in listed and relaxed.number not in listed
    assert "at risk</span>" in listed
    detail = signed_in.get(reverse("work_order_detail", args=[tight.number])).content.decode()
    assert "Projected end" in detail and "at risk</span>" in detail
    relaxed_page = signed_in.get(reverse("work_order_detail", args=[relaxed.number]))
    assert "at risk</span>" not in relaxed_page.content.decode()


def test_detail_history_reads_as_words_with_replans_and_plc_counts_collapsed(
    signed_in, work_order, operator
):
    start = timezone.now() - timedelta(hours=3)
    op = services.start_operation(
        work_order.operations.get(sequence=10), operator=operator, at=start
    )
    plc = actor_for(op.machine.code)
    end = start + timedelta(hours=6)
    for i in range(6):
        at = start + timedelta(minutes=10 * (i + 1))
        services.report_quantity(op, actor=plc, good=10, scrap=1 if i == 2 else 0, at=at)
        # The scheduler re-plans after each count, by a minute or two: nothing to show.
        apply_schedule(
            work_order.pk,
            projected_end=end + timedelta(minutes=i),
            planned={},
            reason=f"{op.machine.code} counted",
            at=at + timedelta(seconds=5),
        )
    apply_schedule(
        work_order.pk,
        projected_end=end + timedelta(hours=20),
        planned={},
        reason="M-03 down; WO-1004 rush",
        at=start + timedelta(minutes=70),
    )

    body = signed_in.get(reverse("work_order_detail", args=[work_order.number]))
    shown = visible_text(body)
    local = timezone.localtime
    counted = (
        f"+60 good, +1 scrap from the PLC ({op.machine.code}) "
        f"between {local(start + timedelta(minutes=10)):%H:%M} "
        f"and {local(start + timedelta(minutes=60)):%H:%M}"
    )
    assert counted in shown
    assert shown.count("Projected end set to") == 1
    assert shown.count("Projected end moved from") == 1
    moved = (
        f"Projected end moved from {display_when(end)} to "
        f"{display_when(end + timedelta(hours=20))} (20 h later)"
    )
    assert moved in shown
    assert "M-03 down; WO-1004 rush" in shown
    assert "Started: Released → In progress" in shown and "Started: Ready → Running" in shown
    assert "Scheduler" in shown and f"PLC {op.machine.code}" in shown
    for code in ("in_progress", "report_quantity", "reschedule", "quantity_good"):
        assert code not in shown
    assert not re.search(r"\d{4}-\d\d-\d\d", shown)  # no raw ISO dates anywhere on the page
    assert display_when(start) in shown  # the product's one format ("Tue 01 Dec 14:00")


# --- Input no page can use: a page in words, never a server error ------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/work-orders/{number}%00/",
        "/work-orders/{number}%00/traveler/",
        "/work-orders/?status=released%00",
        "/work-orders/?q%00=1",
    ],
)
def test_a_nul_byte_in_the_address_is_a_400_page_in_words(signed_in, work_order, path):
    """PostgreSQL cannot hold NUL in text: looked up, it was a server error."""
    response = signed_in.get(path.format(number=work_order.number))

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "holds a character that cannot be stored" in visible_text(response)


def test_a_nul_byte_in_a_form_field_is_a_400_page_and_changes_nothing(
    client, supervisor, work_order
):
    client.force_login(supervisor)
    version = work_order.version

    response = client.post(
        reverse("work_order_detail", args=[work_order.number]),
        {"action": "hold", "reason": "Crash\x00", "version": version},
    )

    assert response.status_code == 400
    assert "nothing was changed" in visible_text(response)
    work_order.refresh_from_db()
    assert (work_order.status, work_order.version) == ("released", version)


def test_a_session_cookie_holding_nul_is_ignored(client, db):
    """Fails without the fix on PostgreSQL (the session lookup was a server error)."""
    client.cookies["sessionid"] = "abcdefgh\x00ijklmnop"

    response = client.get(reverse("work_order_list"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_request_for_another_host_is_a_page_in_words(client, db):
    response = client.get(reverse("work_order_list"), HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert "could not be understood" in visible_text(response)
