"""Shift calendars are edited in the admin: bad input is refused with words, and what is
saved is what the scheduler reads."""

from __future__ import annotations

from datetime import time

import pytest
from django.urls import reverse

from mes.calendars.models import CalendarException, Shift, break_inside
from mes.calendars.selectors import calendar_specs
from mes.models import Site
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def shift_form(site: Site, **overrides) -> dict:
    data = {
        "site": site.pk,
        "code": "early",
        "name": "Early shift",
        "start": "06:00",
        "end": "14:00",
        "monday": "on",
        "tuesday": "on",
        "active": "on",
        "breaks-TOTAL_FORMS": "1",
        "breaks-INITIAL_FORMS": "0",
        "breaks-MIN_NUM_FORMS": "0",
        "breaks-MAX_NUM_FORMS": "1000",
        "breaks-0-start": "10:00",
        "breaks-0-end": "10:30",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_a_shift_with_its_break_is_saved_and_read_by_the_scheduler(admin_client):
    site = SiteFactory(time_zone="Europe/Berlin")
    response = admin_client.post(reverse("admin:calendars_shift_add"), shift_form(site))

    assert response.status_code == 302, response.content.decode()[:2000]
    spec = calendar_specs()[site.pk]
    assert spec.time_zone == "Europe/Berlin"
    (shift,) = spec.shifts
    assert (shift.start, shift.end, shift.weekdays) == (time(6), time(14), frozenset({0, 1}))
    assert shift.breaks == ((time(10), time(10, 30)),)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"breaks-0-start": "15:00", "breaks-0-end": "15:30"}, "is not inside the shift"),
        ({"breaks-0-start": "05:30", "breaks-0-end": "06:30"}, "is not inside the shift"),
        ({"monday": None, "tuesday": None}, "Choose at least one weekday"),
    ],
)
def test_a_shift_that_makes_no_sense_is_refused_in_words(admin_client, overrides, message):
    site = SiteFactory()
    response = admin_client.post(
        reverse("admin:calendars_shift_add"), shift_form(site, **overrides)
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Shift.objects.exists()


def test_an_extra_window_needs_its_times(admin_client):
    site = SiteFactory()
    url = reverse("admin:calendars_calendarexception_add")
    form = {"site": site.pk, "day": "2026-12-05", "kind": "extra", "name": "Extra Saturday"}

    refused = admin_client.post(url, form)
    assert refused.status_code == 200 and "needs its window" in refused.content.decode()
    assert not CalendarException.objects.exists()

    saved = admin_client.post(url, {**form, "start": "08:00", "end": "12:00"})
    assert saved.status_code == 302
    assert calendar_specs()[site.pk].exceptions[0].kind == "extra"


def test_a_site_time_zone_must_be_a_real_zone(admin_client):
    site = SiteFactory()
    url = reverse("admin:mes_site_change", args=[site.pk])
    response = admin_client.post(
        url, {"code": site.code, "name": site.name, "time_zone": "Europe/Atlantis"}
    )
    assert response.status_code == 200
    assert "is not an IANA time zone" in response.content.decode()
    site.refresh_from_db()
    assert site.time_zone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("shift", "pause", "inside"),
    [
        ((time(6), time(14)), (time(6), time(6, 30)), True),
        ((time(6), time(14)), (time(13, 30), time(14)), True),
        ((time(6), time(14)), (time(13, 45), time(14, 15)), False),
        ((time(22), time(6)), (time(2), time(2, 30)), True),
        ((time(22), time(6)), (time(23, 45), time(0, 15)), True),
        ((time(22), time(6)), (time(6), time(6, 30)), False),
        ((time(22), time(6)), (time(21), time(21, 30)), False),
    ],
)
def test_break_inside_a_shift(shift, pause, inside):
    assert break_inside(shift, pause) is inside
