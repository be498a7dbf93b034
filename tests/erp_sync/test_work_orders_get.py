"""GET /api/v1/work-orders/{number}/ (ETag, If-None-Match) and GET /api/v1/work-orders/
(filters, page_size, cursor pages, the changes feed, query counts)."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import connection, transaction
from django.utils import timezone

from mes import services
from mes.formats import iso_utc
from mes.models import WorkOrder
from mes.selectors import work_order_representation
from tests.factories import RoutingFactory, RoutingStepFactory, make_routing, make_work_order

from .helpers import (
    API,
    CURRENT_OPERATION_KEYS,
    OPERATION_KEYS,
    WORK_ORDER_KEYS,
    assert_error,
    assert_etag,
    walk,
    wo_url,
)

pytestmark = pytest.mark.django_db
LIST = f"{API}/work-orders/"
ERP = services.Actor.system("erp-test")


def list_url(**params) -> str:
    return LIST + ("?" + urlencode(params) if params else "")


def numbers(response) -> list[str]:
    assert response.status_code == 200, response.content[:500]
    return [row["number"] for row in response.json()["results"]]


def orders(routing, count: int, *, prefix: str = "WO-", release: bool = False, start=0):
    return [
        services.create_work_order(
            number=f"{prefix}{i:03d}",
            product=routing.product,
            routing=routing,
            quantity=10,
            due_date=timezone.now() + timedelta(days=3),
            actor=ERP,
            release=release,
        )
        for i in range(start, start + count)
    ]


# --- Detail -----------------------------------------------------------------------------------


def test_detail_is_the_contract_representation_with_an_etag(erp_client, supervisor):
    wo = make_work_order(actor=supervisor, number="WO-1001", quantity=500)
    op = services.start_operation(wo.operations.get(sequence=10), operator=supervisor)
    services.report_quantity(op, actor=supervisor, good=120, scrap=3)

    response = erp_client.get(wo_url("WO-1001"))

    assert response.status_code == 200
    wo.refresh_from_db()
    assert_etag(response)
    body = response.json()
    assert set(body) == WORK_ORDER_KEYS
    assert body["number"] == "WO-1001"
    assert body["product"] == wo.product.code and body["routing"] == wo.routing.code
    assert body["quantity"] == 500
    assert body["status"] == "in_progress"
    assert body["due_date"] == iso_utc(wo.due_date)
    assert body["actual_start"] == iso_utc(wo.actual_start) and body["actual_start"].endswith("Z")
    assert body["updated_at"] == iso_utc(wo.updated_at)
    assert body["quantity_scrap"] == 3  # scrap is summed over operations
    assert body["quantity_good"] == 0  # good is the last operation's
    first = body["operations"][0]
    assert set(first) == OPERATION_KEYS
    assert (first["sequence"], first["status"]) == (10, "running")
    assert (first["quantity_good"], first["quantity_scrap"]) == (120, 3)
    assert first["machine"] == op.machine.code
    assert first["work_center"] == op.work_center.code
    assert set(body["current_operation"]) == CURRENT_OPERATION_KEYS
    assert body["current_operation"] == {
        "sequence": 10,
        "name": op.name,
        "work_center": op.work_center.code,
        "machine": op.machine.code,
        "status": "running",
    }


def test_unknown_order_is_404(erp_client):
    assert_error(erp_client.get(wo_url("WO-NOPE")), 404, "not_found")


def test_if_none_match_with_the_current_etag_is_304(erp_client, work_order):
    etag = erp_client.get(wo_url(work_order.number))["ETag"]

    response = erp_client.get(wo_url(work_order.number), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag


@pytest.mark.parametrize("form", ["weak", "list"])
def test_if_none_match_accepts_weak_tags_and_lists(erp_client, work_order, form):
    etag = erp_client.get(wo_url(work_order.number))["ETag"]
    header = f"W/{etag}" if form == "weak" else f'"other", {etag}'

    response = erp_client.get(wo_url(work_order.number), HTTP_IF_NONE_MATCH=header)

    assert response.status_code == 304


def test_if_none_match_star_is_304_for_an_existing_order(erp_client, work_order):
    response = erp_client.get(wo_url(work_order.number), HTTP_IF_NONE_MATCH="*")
    assert response.status_code == 304


def test_if_none_match_with_a_stale_etag_is_200_and_a_new_etag(erp_client, work_order):
    old = erp_client.get(wo_url(work_order.number))["ETag"]
    services.update_work_order(work_order, actor=ERP, notes="changed")

    response = erp_client.get(wo_url(work_order.number), HTTP_IF_NONE_MATCH=old)

    assert response.status_code == 200
    assert response["ETag"] != old
    assert response.json()["number"] == work_order.number


def test_the_etag_moves_when_an_operation_changes(erp_client, work_order, supervisor):
    old = erp_client.get(wo_url(work_order.number))["ETag"]
    services.start_operation(work_order.operations.get(sequence=10), operator=supervisor)

    response = erp_client.get(wo_url(work_order.number), HTTP_IF_NONE_MATCH=old)

    assert response.status_code == 200
    assert response.json()["operations"][0]["status"] == "running"


def test_anonymous_get_is_401(anon_client, work_order):
    assert_error(anon_client.get(wo_url(work_order.number)), 401, "not_authenticated")


# --- List and filters -------------------------------------------------------------------------


@pytest.fixture
def assorted(supervisor):
    """Orders in several statuses, priorities and products."""
    a, b = make_routing(1), make_routing(1)
    planned = make_work_order(actor=supervisor, routing=a, number="WO-A-PLANNED", release=False)
    released = make_work_order(actor=supervisor, routing=a, number="WO-A-RELEASED")
    rush = services.create_work_order(
        number="WO-B-RUSH",
        product=b.product,
        routing=b,
        quantity=5,
        due_date=timezone.now() + timedelta(days=1),
        priority="rush",
        actor=supervisor,
        release=True,
    )
    running = make_work_order(actor=supervisor, routing=b, number="WO-B-RUNNING")
    services.start_operation(running.operations.get(), operator=supervisor)
    return {"a": a.product.code, "b": b.product.code, "orders": [planned, released, rush, running]}


def test_list_without_filters_is_every_order_by_number(erp_client, assorted):
    response = erp_client.get(LIST)

    assert set(response.json()) == {"results", "next"}
    assert numbers(response) == sorted(wo.number for wo in assorted["orders"])
    assert response.json()["next"] is None
    assert all(set(row) == WORK_ORDER_KEYS for row in response.json()["results"])


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"status": "planned"}, ["WO-A-PLANNED"]),
        ({"status": "released"}, ["WO-A-RELEASED", "WO-B-RUSH"]),
        ({"status": "in_progress"}, ["WO-B-RUNNING"]),
        ({"status": "completed"}, []),
        ({"priority": "rush"}, ["WO-B-RUSH"]),
        ({"priority": "normal"}, ["WO-A-PLANNED", "WO-A-RELEASED", "WO-B-RUNNING"]),
        ({"product": "a"}, ["WO-A-PLANNED", "WO-A-RELEASED"]),
        ({"product": "b", "status": "released"}, ["WO-B-RUSH"]),
        ({"product": "NO-SUCH-PRODUCT"}, []),
    ],
)
def test_list_filters(erp_client, assorted, params, expected):
    if "product" in params and params["product"] in ("a", "b"):
        params = {**params, "product": assorted[params["product"]]}
    assert numbers(erp_client.get(list_url(**params))) == expected


@pytest.mark.parametrize(
    "params,field",
    [
        ({"status": "lost"}, "status"),
        ({"priority": "whenever"}, "priority"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"page_size": 501}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"updated_since": "2026-01-01T00:00:00"}, "updated_since"),  # naive
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJ4Il0"}, "cursor"),  # base64 of a JSON list
        ({"updated_since": "2026-01-01T00:00:00Z", "cursor": "eyJrIjoiV08ifQ"}, "cursor"),
    ],
)
def test_bad_query_parameters_are_400(erp_client, db, params, field):
    assert_error(erp_client.get(list_url(**params)), 400, "invalid", {field})


def test_page_size_defaults_to_100_and_goes_up_to_500(erp_client):
    orders(make_routing(1), 101)

    default = erp_client.get(LIST)
    assert len(default.json()["results"]) == 100
    assert default.json()["next"] is not None

    largest = erp_client.get(list_url(page_size=500))
    assert len(largest.json()["results"]) == 101
    assert largest.json()["next"] is None


def test_cursor_pages_cover_every_order_once_in_order(erp_client):
    orders(make_routing(1), 7)

    first = erp_client.get(list_url(page_size=3))
    next_url = first.json()["next"]
    parts = urlsplit(next_url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "testserver", LIST)
    assert parse_qs(parts.query)["page_size"] == ["3"]

    rows = walk(erp_client, list_url(page_size=3))
    assert [row["number"] for row in rows] == [f"WO-{i:03d}" for i in range(7)]


def test_next_links_keep_the_filters(erp_client, supervisor):
    routing = make_routing(1)
    orders(routing, 4, prefix="WO-P-")
    orders(routing, 4, prefix="WO-R-", release=True)

    rows = walk(erp_client, list_url(status="released", page_size=2))

    assert [row["number"] for row in rows] == [f"WO-R-{i:03d}" for i in range(4)]


def test_a_page_after_an_insert_continues_where_it_stopped(erp_client):
    """Keyset pages: rows added before the cursor do not shift the next page."""
    routing = make_routing(1)
    orders(routing, 4, prefix="WO-M-")
    first = erp_client.get(list_url(page_size=2))
    orders(routing, 2, prefix="WO-A-")  # sorts before everything served

    rest = walk(erp_client, first.json()["next"])

    assert [row["number"] for row in rest] == ["WO-M-002", "WO-M-003"]


# --- Changes feed -----------------------------------------------------------------------------


def feed_url(since, **params) -> str:
    return list_url(updated_since=iso_utc(since), **params)


def test_changes_feed_is_ordered_by_updated_at_then_number(erp_client):
    routing = make_routing(1)
    created = orders(routing, 5)
    since = created[2].updated_at
    # Touch the oldest order: it moves to the end of the feed.
    services.update_work_order(created[0], actor=ERP, notes="touched")

    rows = walk(erp_client, feed_url(since, page_size=2))

    assert [row["number"] for row in rows] == ["WO-002", "WO-003", "WO-004", "WO-000"]
    keys = [(row["updated_at"], row["number"]) for row in rows]
    assert keys == sorted(keys)


def test_changes_feed_with_a_future_since_is_empty(erp_client):
    orders(make_routing(1), 2)
    response = erp_client.get(feed_url(timezone.now() + timedelta(days=1)))
    assert response.json() == {"results": [], "next": None}


def test_changes_feed_accepts_any_offset(erp_client):
    created = orders(make_routing(1), 3)
    since = created[1].updated_at.astimezone(timezone.get_fixed_timezone(120))

    response = erp_client.get(list_url(updated_since=since.isoformat()))

    assert numbers(response) == ["WO-001", "WO-002"]


@pytest.mark.django_db(transaction=True)
def test_changes_feed_walk_skips_no_order_while_orders_change(erp_client):
    """Walk the feed five at a time while two other threads keep updating orders: every
    order that existed before the walk is seen, keys only move forward, and no change is
    lost: a reader that goes on from the last ``updated_at`` it saw gets every order's latest
    version (a change committed behind the cursor would be lost for good)."""
    routing = make_routing(1)
    since = timezone.now() - timedelta(seconds=1)
    existing = orders(routing, 30)
    halves = [existing[0::2], existing[1::2]]
    done, errors = [0, 0], []
    stop = threading.Event()
    started = [threading.Event(), threading.Event()]

    def keep_updating(k: int) -> None:
        try:
            i = 0
            while not stop.is_set() and i < 300:
                wo = halves[k][i % len(halves[k])]
                services.update_work_order(wo, actor=ERP, notes=f"tick {k}.{i}")
                i += 1
                done[k] = i
                started[k].set()
        except BaseException as exc:
            errors.append(exc)
        finally:
            started[k].set()
            connection.close()

    writers = [threading.Thread(target=keep_updating, args=(k,)) for k in (0, 1)]
    for writer in writers:
        writer.start()
    try:
        assert all(event.wait(20) for event in started)
        before_walk = sum(done)
        rows = walk(erp_client, feed_url(since, page_size=5), limit=5000)
        during_walk = sum(done) - before_walk
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)

    assert not errors, errors
    assert during_walk > 0, "the writers made no change during the walk"
    seen = {row["number"] for row in rows}
    missing = {wo.number for wo in existing} - seen
    assert not missing, f"skipped {sorted(missing)} ({during_walk} updates during the walk)"
    keys = [(row["updated_at"], row["number"]) for row in rows]
    assert all(a < b for a, b in itertools.pairwise(keys)), "the feed went backwards"

    # Writers stopped: go on from the last updated_at seen, as a polling ERP would.
    later = walk(erp_client, list_url(updated_since=rows[-1]["updated_at"], page_size=5))
    versions = {(row["number"], row["updated_at"]) for row in rows + later}
    final = {(wo.number, iso_utc(wo.updated_at)) for wo in WorkOrder.objects.all()}
    lost = final - versions
    assert not lost, f"changes committed behind the cursor were never served: {sorted(lost)}"


@pytest.mark.django_db(transaction=True)
def test_a_change_committing_while_a_page_is_read_is_not_left_behind_the_cursor(erp_client):
    """Order A's change is written but not committed when the reader reads a page, and
    order B is changed meanwhile. With a commit-ordered clock B's change waits for A's
    commit, so both sort after the page the reader got; with a plain clock B would sort
    after A yet be visible first, the cursor would pass A, and A's change would be lost."""
    routing = make_routing(1)
    since = timezone.now() - timedelta(seconds=1)
    a, b = orders(routing, 2)
    erp_client.get(list_url(page_size=1))  # writes last_used_at now, not under A's lock
    a_written, release_a, b_done = threading.Event(), threading.Event(), threading.Event()
    errors: list = []

    def change_a() -> None:
        try:
            with transaction.atomic():
                services.update_work_order(a, actor=ERP, notes="A changed")
                a_written.set()
                assert release_a.wait(20)
        except BaseException as exc:
            errors.append(exc)
        finally:
            a_written.set()
            connection.close()

    def change_b() -> None:
        try:
            services.update_work_order(b, actor=ERP, notes="B changed")
        except BaseException as exc:
            errors.append(exc)
        finally:
            b_done.set()
            connection.close()

    threads = [threading.Thread(target=change_a), threading.Thread(target=change_b)]
    threads[0].start()
    try:
        assert a_written.wait(20)
        threads[1].start()
        b_done.wait(0.3)  # a plain clock lets B commit now; the real one makes it wait
        page = walk(erp_client, feed_url(since, page_size=10))
    finally:
        release_a.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors

    later = walk(erp_client, list_url(updated_since=page[-1]["updated_at"]))
    served = {(row["number"], row["updated_at"]) for row in page + later}
    for wo in (a, b):
        wo.refresh_from_db()
        assert (wo.number, iso_utc(wo.updated_at)) in served, f"{wo.number}'s change was lost"


# --- Query counts -----------------------------------------------------------------------------


def orders_with_operations(count: int, supervisor) -> list[WorkOrder]:
    """``count`` released orders with three operations each, the first one running on a
    machine (so machine and work center are both rendered)."""
    routing = make_routing(3, machines_per_center=count)
    created = orders(routing, count, release=True)
    first_center = routing.steps.get(sequence=10).work_center
    for wo, machine in zip(created, first_center.machines.order_by("pk"), strict=True):
        op = wo.operations.get(sequence=10)
        services.start_operation(op, operator=supervisor, machine=machine)
    return created


@pytest.mark.parametrize("count", [3, 30])
def test_list_query_count_does_not_grow_with_orders(
    erp_client, supervisor, django_assert_num_queries, count
):
    orders_with_operations(count, supervisor)
    erp_client.get(list_url(page_size=1))  # the client's last_used_at is written once

    # The orders (representations stored rendered); the token's client is cached by now.
    with django_assert_num_queries(1):
        response = erp_client.get(list_url(page_size=100))

    assert len(response.json()["results"]) == count
    assert all(len(row["operations"]) == 3 for row in response.json()["results"])


@pytest.mark.parametrize("count", [3, 30])
def test_changes_feed_query_count_does_not_grow_with_orders(
    erp_client, supervisor, django_assert_num_queries, count
):
    orders_with_operations(count, supervisor)
    since = timezone.now() - timedelta(days=1)
    erp_client.get(list_url(page_size=1))

    with django_assert_num_queries(1):
        response = erp_client.get(feed_url(since, page_size=100))

    assert len(response.json()["results"]) == count


@pytest.mark.parametrize("steps", [3, 12])
def test_detail_query_count_does_not_grow_with_operations(
    erp_client, supervisor, django_assert_num_queries, steps
):
    wo = make_work_order(actor=supervisor, steps=steps, number="WO-Q")
    services.start_operation(wo.operations.get(sequence=10), operator=supervisor)
    erp_client.get(list_url(page_size=1))

    with django_assert_num_queries(1):
        response = erp_client.get(wo_url("WO-Q"))

    assert len(response.json()["operations"]) == steps


def test_the_served_representation_is_never_stale(erp_client, supervisor):
    """The API serves a rendering stored by the services: after every kind of change it is
    what the order and its operations say now."""
    routing = make_routing(2)
    other = RoutingFactory(product=routing.product, code="ALT", active=False, version=2)
    RoutingStepFactory(routing=other, sequence=10, name="Schweißen")  # non-ASCII survives
    wo = make_work_order(actor=supervisor, routing=routing, number="WO-FRESH", release=False)

    def check() -> None:
        fresh = WorkOrder.objects.get(pk=wo.pk)
        expected = work_order_representation(fresh)
        assert erp_client.get(wo_url("WO-FRESH")).json() == expected
        assert erp_client.get(LIST).json()["results"] == [expected]

    check()
    services.release_work_order(wo, actor=ERP)
    check()
    services.update_work_order(wo, actor=ERP, routing=other, quantity=12, priority="rush")
    check()
    op = services.start_operation(wo.operations.get(), operator=supervisor)
    check()
    op = services.report_quantity(op, actor=supervisor, good=5, scrap=1)
    check()
    services.hold_work_order(wo, actor=supervisor, reason="Check")
    check()
    services.release_work_order(wo, actor=supervisor)
    check()
    op = services.resume_operation(op, actor=supervisor)
    services.complete_operation(op, actor=supervisor)
    check()
    assert erp_client.get(wo_url("WO-FRESH")).json()["status"] == "completed"
    assert erp_client.get(wo_url("WO-FRESH")).json()["operations"][0]["name"] == "Schweißen"
