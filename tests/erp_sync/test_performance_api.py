"""GET /api/v1/oee/ and GET /api/v1/downtimes/: the figures the screens show, for the ERP,
in the contract's shapes and errors."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from shopfloor.downtime import declare_machine_down, declare_machine_up
from shopfloor.models import DowntimeReason
from tests.erp_sync.helpers import API, assert_error
from tests.performance.test_rollups import at, plant, plc  # noqa: F401 (the plant fixture)

pytestmark = pytest.mark.django_db


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_oee_of_a_machine_and_of_its_site(erp_client, plant):  # noqa: F811
    machine, _ = plant
    plc(machine, "running", at(6))
    plc(machine, "down", at(8))
    plc(machine, "running", at(9))

    response = erp_client.get(
        f"{API}/oee/",
        {"level": "machine", "code": machine.code, "start": iso(at(6)), "end": iso(at(10))},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["level"], body["start"], body["end"]) == ("machine", iso(at(6)), iso(at(10)))
    (row,) = body["results"]
    assert row["code"] == machine.code and row["machines"] == 1
    assert row["availability"] == pytest.approx(3 / 4)
    assert row["oee"] == 0.0  # nothing counted
    assert row["performance"] == 0.0 and row["quality"] is None  # ran, made nothing
    assert row["losses"]["breakdowns"] == 3600.0
    assert set(row["losses"]) == {
        "breakdowns",
        "setup",
        "small_stops",
        "reduced_speed",
        "startup_rejects",
        "production_rejects",
        "no_data",
    }

    site = machine.work_center.area.site
    query = {"level": "site", "start": iso(at(6)), "end": iso(at(10))}
    sites = erp_client.get(f"{API}/oee/", query).json()
    mine = next(r for r in sites["results"] if r["code"] == site.code)
    assert mine["availability"] == row["availability"]

    # Without an end, up to now (to the quarter hour).
    until_now = erp_client.get(f"{API}/oee/", {"level": "site", "start": iso(at(6))}).json()
    end = datetime.fromisoformat(until_now["end"])
    assert timedelta(0) <= timezone.now() - end < timedelta(minutes=16)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"level": "plant", "start": "2026-11-23T06:00:00Z"}, "level"),
        ({"level": "machine"}, "start"),
        ({"level": "machine", "start": "yesterday"}, "start"),
        ({"level": "site", "start": "2026-11-23T06:00:00Z", "end": "2026-11-23T05:00:00Z"}, "end"),
        ({"level": "site", "start": "0001-01-01T00:00:00Z"}, "start"),
        ({"level": "site", "start": "2026-01-01T00:00:00Z", "end": "2027-12-01T00:00:00Z"}, "end"),
        ({"level": "site", "start": "2026-01-01T00:00:00Z", "code": "a b"}, "code"),
    ],
)
def test_bad_oee_queries_are_400_in_the_contracts_shape(erp_client, query, field):
    assert_error(erp_client.get(f"{API}/oee/", query), 400, "invalid", {field})


def test_an_unknown_code_is_404_and_anonymous_callers_are_refused(erp_client, anon_client):
    query = {"level": "work_center", "code": "NOPE", "start": "2026-11-23T06:00:00Z"}
    assert_error(erp_client.get(f"{API}/oee/", query), 404, "not_found")
    assert_error(anon_client.get(f"{API}/oee/", query), 401, "not_authenticated")
    assert_error(
        anon_client.get(f"{API}/downtimes/", {"after": "2026-11-23T06:00:00Z"}),
        401,
        "not_authenticated",
    )


def test_downtimes_after_an_instant_with_their_reasons(erp_client, plant, supervisor):  # noqa: F811
    machine, op = plant
    planned = DowntimeReason.objects.filter(planned=True, parent__isnull=False).first()
    plc(machine, "running", at(6))
    plc(machine, "down", at(7))  # the PLC opens a stop on the running operation
    plc(machine, "running", at(7, 30))
    declare_machine_down(machine, actor=supervisor, kind="down", code=planned.code, at=at(9))
    declare_machine_up(machine, actor=supervisor, at=at(10))
    declare_machine_down(machine, actor=supervisor, kind="blocked", note="No steel", at=at(11))

    everything = erp_client.get(f"{API}/downtimes/", {"after": iso(at(0))}).json()
    first, second, third = everything["results"]
    assert everything["next"] is None
    assert (first["cause"], first["started_at"], first["ended_at"]) == (
        "down",
        iso(at(7)),
        iso(at(7, 30)),
    )
    assert first["work_order"] == op.work_order.number and first["operation_sequence"] == 10
    assert first["duration_seconds"] == 1800.0 and first["reason"] == ""
    assert (second["reason_code"], second["planned"], second["reason_by"]) == (
        planned.code,
        True,
        supervisor.username,
    )
    assert (third["cause"], third["ended_at"]) == ("blocked", None)
    assert third["duration_seconds"] >= (timezone.now() - at(11)).total_seconds() - 5
    assert third["reason"] == "No steel" and third["planned"] is None

    later = erp_client.get(f"{API}/downtimes/", {"after": iso(at(9, 30))}).json()
    assert [r["id"] for r in later["results"]] == [second["id"], third["id"]]

    paged = erp_client.get(f"{API}/downtimes/", {"after": iso(at(0)), "page_size": 2}).json()
    assert [r["id"] for r in paged["results"]] == [first["id"], second["id"]]
    rest = erp_client.get(paged["next"]).json()
    assert [r["id"] for r in rest["results"]] == [third["id"]]

    other = erp_client.get(f"{API}/downtimes/", {"after": iso(at(0)), "machine": "NOPE"}).json()
    assert other["results"] == []
    assert_error(
        erp_client.get(f"{API}/downtimes/", {"after": iso(at(0)), "cursor": "zzz"}),
        400,
        "invalid",
        {"cursor"},
    )


def test_the_oee_query_count_does_not_grow_with_the_machines(erp_client, plant):  # noqa: F811
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import MachineFactory

    machine, _ = plant
    query = {"level": "machine", "start": iso(at(6)), "end": iso(at(10))}

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert erp_client.get(f"{API}/oee/", query).status_code == 200
        return len(queries)

    erp_client.get(f"{API}/oee/", query)  # the token is looked up once, then cached
    one = count()
    for _ in range(5):
        MachineFactory(work_center=machine.work_center)
    assert count() == one
    # machines, rollups, stops, busy machines; the calendars: shifts, breaks, exceptions, sites
    assert one == 8
