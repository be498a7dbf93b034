"""The supervisors' pages: OEE with its losses, downtime (Pareto and the stops waiting for a
reason), a machine's timeline and the Gantt of the live schedule. Role-checked, filterable,
exportable, and never a 500 on odd input."""

from __future__ import annotations

import csv
import io

import pytest

from mes.performance.views import _csv_safe
from mes.scheduling.services import replan_if_needed
from shopfloor.models import DowntimeReason, DowntimeRecord
from tests.performance.test_rollups import at, plant, plc  # noqa: F401 (the plant fixture)

pytestmark = pytest.mark.django_db
PAGES = ["/performance/", "/performance/downtime/", "/performance/schedule/"]


@pytest.mark.parametrize("url", PAGES)
def test_pages_are_for_supervisors_planners_and_admins(client, operator, supervisor, planner, url):
    assert client.get(url).status_code == 302  # to the sign-in
    client.force_login(operator)
    forbidden = client.get(url)
    assert forbidden.status_code == 403 and b"supervisors and planners" in forbidden.content
    for user in (supervisor, planner):
        client.force_login(user)
        assert client.get(url).status_code == 200


def test_the_oee_page_leads_down_the_levels_and_exports_csv(client, supervisor, plant):  # noqa: F811
    machine, _ = plant
    plc(machine, "running", at(6))
    plc(machine, "down", at(8))
    plc(machine, "running", at(9))
    client.force_login(supervisor)
    day = f"{at(0):%Y-%m-%d}"
    query = {"range": "custom", "start": day, "end": day}

    page = client.get("/performance/", {**query, "level": "area"}).content.decode()
    area = machine.work_center.area.code
    assert f"level=work_center&amp;area={area}" in page
    assert "<svg" in page and "Breakdowns and unplanned stops" in page

    machines = client.get("/performance/", {**query, "level": "machine"}).content.decode()
    assert f"/performance/machines/{machine.code}/timeline/" in machines

    exported = client.get("/performance/", {**query, "level": "machine", "format": "csv"})
    assert exported["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    mine = next(r for r in rows if r["code"] == machine.code)
    # Working 06-14 less the 10:00 break (7.5 h); running 06-08 and from 09:00 on, through
    # the break (0.5 h) and past the shift to midnight (10 h): production outside the plan.
    assert float(mine["loss_breakdowns_s"]) == 3600
    assert float(mine["planned_s"]) == 18 * 3600


@pytest.mark.parametrize(
    "query",
    [
        {"level": "galaxy"},
        {"range": "custom", "start": "yesterday"},
        {"range": "custom", "start": "2026-12-01", "end": "2025-01-01"},
        {"range": "custom", "start": "0001-01-01", "end": "9999-12-31"},
        {"area": "NOPE", "work_center": "x" * 500},
        {"range": "week", "format": "csv"},
    ],
)
def test_odd_filters_get_an_answer_not_a_500(client, supervisor, query):
    client.force_login(supervisor)
    assert client.get("/performance/", query).status_code == 200
    assert client.get("/performance/downtime/", query).status_code == 200


def test_giving_a_waiting_stop_its_reason_from_the_downtime_page(client, supervisor, plant):  # noqa: F811
    machine, _ = plant
    plc(machine, "running", at(6))
    plc(machine, "down", at(7))
    plc(machine, "running", at(7, 30))
    record = DowntimeRecord.objects.get(machine=machine)
    reason = DowntimeReason.objects.filter(parent__isnull=False, planned=False).first()
    client.force_login(supervisor)
    day = f"{at(0):%Y-%m-%d}"
    url = f"/performance/downtime/?range=custom&start={day}&end={day}"

    page = client.get(url).content.decode()
    assert "Stops waiting for their reason" in page and f'value="{record.pk}"' in page
    assert "No reason yet" in page  # in the Pareto, until given

    client.post(url, {"record": record.pk, "reason": reason.code})
    record.refresh_from_db()
    assert record.reason_choice == reason and record.reason_by == supervisor
    page = client.get(url).content.decode()
    assert reason.name in page and f'value="{record.pk}"' not in page

    forged = client.post(url, {"record": "99999999", "reason": reason.code}, follow=True)
    assert forged.status_code == 200 and b"not known" in forged.content
    refused = client.post(url, {"record": record.pk, "reason": "NOPE"}, follow=True)
    assert "is not an active downtime reason" in refused.content.decode()


def test_the_timeline_shows_the_days_states_and_events(client, supervisor, plant):  # noqa: F811
    machine, _ = plant
    plc(machine, "running", at(6))
    plc(machine, "down", at(8))
    client.force_login(supervisor)
    page = client.get(
        f"/performance/machines/{machine.code}/timeline/", {"day": f"{at(0):%Y-%m-%d}"}
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert 'class="st-down"' in html and 'class="st-running"' in html
    assert f"plc:{machine.code}" in html
    assert client.get("/performance/machines/NOPE/timeline/").status_code == 404
    assert (
        client.get(f"/performance/machines/{machine.code}/timeline/", {"day": "31.02."}).status_code
        == 200
    )


def test_the_schedule_gantt_says_why_it_last_re_planned(client, supervisor, plant):  # noqa: F811
    machine, op = plant
    replan_if_needed()
    client.force_login(supervisor)
    html = client.get("/performance/schedule/", {"hours": "48"}).content.decode()
    assert "Last re-planned at" in html
    assert f"{op.work_order.number}/10" in html  # the bar on the machine's lane
    assert machine.code in html
    assert client.get("/performance/schedule/", {"hours": "lots"}).status_code == 200


def test_csv_cells_cannot_be_formulas():
    assert _csv_safe("=SUM(A1)") == "'=SUM(A1)"
    assert _csv_safe("M-01") == "M-01" and _csv_safe(3.5) == 3.5


def test_the_trend_of_one_machine(client, supervisor, plant):  # noqa: F811
    machine, _ = plant
    other = machine.work_center.machines.create(code="OTHER-1", name="Other")
    client.force_login(supervisor)
    page = client.get(
        "/performance/", {"level": "machine", "machine": machine.code, "range": "7d"}
    ).content.decode()
    assert f"OEE by day, last 14 days: {machine.code}" in page
    assert f"/performance/machines/{machine.code}/timeline/" in page
    assert other.code not in page  # the table is narrowed to the machine too
