"""The history in words (mes.history, pure: plain rows in, lines out) and the product's one
date format (mes.formats.display_when and the ``when`` template filter)."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.template import Context, Template
from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st

from mes.choices import ActorKind
from mes.formats import display_when, iso_utc
from mes.history import REPLAN_TOLERANCE, HistoryRow, duration, readable_history

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
# Tue 01 Dec 2026, 09:00 in Berlin.
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
NOW = T0
ISO_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
WO = "WO-1012"
OP = "WO-1012 op 10"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def replan(minutes, before, after, *, risk=(False, False), reason="M-03 down") -> HistoryRow:
    """A scheduler row at T0 + minutes moving the projected end from ``before`` to ``after``
    (minutes after T0, or None)."""
    return HistoryRow(
        occurred_at=at(minutes),
        actor_name="scheduler",
        actor_kind=ActorKind.SYSTEM,
        action="reschedule",
        entity_label=WO,
        changes={
            "projected_end": [
                None if before is None else iso_utc(at(before)),
                None if after is None else iso_utc(at(after)),
            ],
            "at_risk": list(risk),
        },
        reason=reason,
    )


def plc(minutes, good_before, good_after, *, machine="M-01", op=OP, scrap=None) -> HistoryRow:
    changes = {"quantity_good": [str(good_before), str(good_after)]}
    if scrap:
        changes["quantity_scrap"] = [str(s) for s in scrap]
    return HistoryRow(
        occurred_at=at(minutes),
        actor_name=f"plc:{machine}",
        actor_kind=ActorKind.PLC,
        action="report_quantity",
        entity_label=op,
        changes=changes,
    )


def person(minutes, action, label=OP, *, before="", after="", changes=None, reason=""):
    return HistoryRow(
        occurred_at=at(minutes),
        actor_name="Ana Lopez",
        actor_kind=ActorKind.USER,
        action=action,
        entity_label=label,
        from_state=before,
        to_state=after,
        changes=changes or {},
        reason=reason,
    )


def lines(rows, **kwargs):
    return readable_history(rows, zone=BERLIN, now=NOW, **kwargs)


# --- Re-plans -------------------------------------------------------------------------------


def test_a_run_of_replans_keeps_only_the_moves_that_mattered():
    rows = [
        replan(0, None, 300, reason="WO-1012 released"),  # first projection: shown
        replan(5, 300, 300, reason="M-01 counted"),  # no change: vanishes
        replan(10, 300, 305, reason="M-01 counted"),  # 5 min: vanishes
        replan(15, 305, 310, reason="M-01 counted"),  # 10 min from the line: vanishes
        replan(20, 310, 1410, reason="M-03 down; WO-1004 rush"),  # 18 h 30 later: shown
        replan(25, 1410, 1400, reason="M-01 counted"),  # 10 min earlier: vanishes
    ]
    result = lines(rows)
    assert [str(line) for line in result] == [
        "Projected end set to Tue 01 Dec 14:00: WO-1012 released",
        "Projected end moved from Tue 01 Dec 14:00 to Wed 02 Dec 08:30 (18 h 30 min later)"
        ": M-03 down; WO-1004 rush; M-01 counted",
    ]
    assert [line.rows for line in result] == [1, 4]
    assert result[1].details == "4 re-plans"
    assert result[1].at == at(20) and result[1].who == "Scheduler"
    assert result[1].kind == "replan"


def test_replans_that_change_nothing_vanish_entirely():
    rows = [replan(m, 300, 300 + m / 10) for m in range(0, 60, 5)]
    assert lines(rows) == []


def test_small_moves_that_add_up_beyond_the_tolerance_make_a_line_from_the_last_shown():
    rows = [replan(m, 300 + m // 5 * 4, 300 + (m // 5 + 1) * 4) for m in range(0, 25, 5)]
    # 4 minutes each: the fourth takes the end 16 minutes from where it was (13:00 + 5 h).
    result = lines(rows)
    assert len(result) == 1
    assert result[0].text == (
        "Projected end moved from Tue 01 Dec 14:00 to Tue 01 Dec 14:16 (16 min later)"
    )
    assert result[0].at == at(15)


def test_tolerance_is_a_parameter():
    rows = [replan(0, 300, 305)]
    assert lines(rows) == []
    assert len(lines(rows, tolerance=timedelta(minutes=1))) == 1


def test_turning_at_risk_is_a_line_however_small_the_move():
    rows = [
        replan(0, 300, 302, risk=(False, True), reason="WO-1004 rush"),
        replan(5, 302, 301, risk=(True, False), reason="M-03 up"),
    ]
    assert [str(line) for line in lines(rows)] == [
        "Now at risk: it ends after the due date; projected end Tue 01 Dec 14:02: WO-1004 rush",
        "No longer at risk; projected end Tue 01 Dec 14:01: M-03 up",
    ]


def test_a_big_move_that_also_turns_at_risk_says_both():
    (line,) = lines([replan(0, 300, 1400, risk=(False, True))])
    assert line.text == (
        "Projected end moved from Tue 01 Dec 14:00 to Wed 02 Dec 08:20 (18 h 20 min later); "
        "now at risk: it ends after the due date"
    )


def test_replans_interleaved_with_other_rows_still_collapse():
    rows = [
        replan(0, None, 300),
        plc(1, 0, 10),
        replan(2, 300, 303),
        person(3, "record_check", f"{OP} BORE", changes={"check": "Bore"}),
        replan(4, 303, 306),
    ]
    texts = [line.text for line in lines(rows)]
    assert texts[0].startswith("Projected end set to")
    assert sum("Projected end" in text for text in texts) == 1


def test_an_end_that_is_no_longer_planned_says_so():
    (line,) = lines([replan(0, 300, None)])
    assert line.text == "Projected end dropped (Tue 01 Dec 14:00 before): not planned"


@given(
    st.lists(
        st.tuples(st.integers(min_value=-120, max_value=120), st.booleans()),
        min_size=1,
        max_size=30,
    )
)
def test_shown_lines_each_matter_and_the_last_is_close_to_the_truth(steps):
    """Whatever the re-plans, every line moved more than the tolerance or turned at risk, and
    the projection a reader last saw is within the tolerance of the real one."""
    rows, end, risk = [], 600, False
    for i, (move, new_risk) in enumerate(steps):
        rows.append(replan(i, end, end + move, risk=(risk, new_risk)))
        end, risk = end + move, new_risk
    result = lines(rows)
    shown_end, shown_risk = at(600), False
    for line in result:
        # the line's row is the one at its time
        row = rows[int((line.at - T0).total_seconds() // 60)]
        new_end = datetime.fromisoformat(row.changes["projected_end"][1])
        new_risk = row.changes["at_risk"][1]
        assert abs(new_end - shown_end) > REPLAN_TOLERANCE or new_risk != shown_risk
        shown_end, shown_risk = new_end, new_risk
    assert abs(at(end) - shown_end) <= REPLAN_TOLERANCE
    assert shown_risk == risk
    assert sum(line.rows for line in result) <= len(rows)


# --- PLC counts -----------------------------------------------------------------------------


def test_plc_counts_of_one_run_add_up_to_one_line():
    rows = [
        plc(60, 0, 15),
        plc(75, 15, 60),
        plc(90, 60, 120, scrap=("0", "3")),
        plc(120, 120, 182),
    ]
    (line,) = lines(rows)
    assert line.text == "+182 good, +3 scrap from the PLC (M-01) between 10:00 and 11:00"
    assert (line.who, line.subject, line.details, line.kind) == ("PLC M-01", OP, "4 counts", "plc")
    assert (line.at, line.until, line.rows) == (at(60), at(120), 4)


def test_rows_about_other_things_do_not_end_a_run():
    rows = [
        plc(60, 0, 10),
        replan(61, 300, 330),
        person(62, "record_check", f"{OP} BORE", changes={"check": "Bore", "verdict": "pass"}),
        plc(63, 10, 25),
        person(64, "start", "WO-1012 op 20", before="ready", after="running"),
        plc(65, 25, 30),
    ]
    result = lines(rows)
    assert result[0].text == "+30 good from the PLC (M-01) between 10:00 and 10:05"
    assert [line.kind for line in result] == ["plc", "replan", "record", "record"]


def test_a_pause_or_a_persons_count_ends_the_run():
    rows = [
        plc(60, 0, 10),
        plc(61, 10, 20),
        person(62, "pause", before="running", after="paused", reason="Tool change"),
        person(70, "resume", before="paused", after="running"),
        plc(71, 20, 25),
        person(72, "report_quantity", changes={"quantity_good": ["25", "23"]}, reason="miscount"),
        plc(73, 23, 30),
    ]
    assert [line.text for line in lines(rows)] == [
        "+20 good from the PLC (M-01) between 10:00 and 10:01",
        "Paused: Running → Paused",
        "Resumed: Paused → Running",
        "+5 good from the PLC (M-01)",
        "-2 good reported",
        "+7 good from the PLC (M-01)",
    ]


def test_each_machine_and_each_operation_has_its_own_run():
    rows = [
        plc(60, 0, 10, machine="M-01"),
        plc(61, 0, 4, machine="M-02"),
        plc(62, 10, 20, machine="M-01"),
        plc(63, 0, 7, machine="M-01", op="WO-1012 op 20"),
        plc(64, 4, 9, machine="M-02"),
    ]
    assert [(line.subject, line.text) for line in lines(rows)] == [
        (OP, "+20 good from the PLC (M-01) between 10:00 and 10:02"),
        (OP, "+9 good from the PLC (M-02) between 10:01 and 10:04"),
        ("WO-1012 op 20", "+7 good from the PLC (M-01)"),
    ]


def test_a_run_over_midnight_names_both_days():
    rows = [plc(14 * 60, 0, 5), plc(16 * 60, 5, 9)]  # 23:00 and 01:00 in Berlin
    (line,) = lines(rows)
    assert line.text == (
        "+9 good from the PLC (M-01) between Tue 01 Dec 23:00 and Wed 02 Dec 01:00"
    )


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=40))
def test_the_plc_lines_add_up_to_what_was_booked(batches):
    rows, total = [], 0
    for i, n in enumerate(batches):
        rows.append(plc(i, total, total + n))
        total += n
    (line,) = lines(rows)
    assert line.text.startswith(f"+{total} good from the PLC (M-01)")
    assert line.rows == len(batches)


# --- Words, not codes -----------------------------------------------------------------------


def every_row_of_a_day():
    return [
        person(
            0,
            "create",
            WO,
            after="planned",
            changes={"quantity": "500", "product": "P-1", "routing": "R-1", "priority": "normal"},
        ),
        person(1, "release", WO, before="planned", after="released"),
        person(1, "ready", OP, before="pending", after="ready"),
        person(2, "start", OP, before="ready", after="running", changes={"machine": "M-01"}),
        person(2, "start", WO, before="released", after="in_progress"),
        person(
            3,
            "report_quantity",
            changes={"quantity_good": ["0", "40"], "quantity_scrap": ["0", "2"]},
        ),
        person(
            4,
            "record_check",
            f"{OP} BORE",
            changes={"check": "Bore", "sample": "#1", "values": "10.02 mm", "verdict": "fail"},
        ),
        person(
            5,
            "open",
            "NC-000001",
            after="open",
            changes={"operation": OP, "check": "Bore", "reaction": "hold_work_order"},
        ),
        person(5, "hold", WO, before="in_progress", after="on_hold", reason="Quality hold"),
        person(
            6,
            "disposition",
            "NC-000001",
            before="open",
            after="closed",
            changes={"disposition": "use_as_is", "signature": "approved"},
        ),
        person(7, "release", WO, before="on_hold", after="in_progress"),
        HistoryRow(
            occurred_at=at(8),
            actor_name="api:erp",
            actor_kind=ActorKind.SYSTEM,
            action="update",
            entity_label=WO,
            changes={
                "priority": ["normal", "rush"],
                "due_date": [iso_utc(at(600)), iso_utc(at(2000))],
            },
        ),
        replan(9, None, 700, risk=(False, True)),
        plc(10, 40, 60),
        person(
            11,
            "complete",
            OP,
            before="running",
            after="done",
            changes={"quantity_good": "60", "quantity_scrap": "2"},
        ),
        person(12, "cancel", WO, before="in_progress", after="cancelled", reason="ERP cancelled"),
    ]


def test_actions_and_statuses_read_as_words():
    result = lines(every_row_of_a_day())
    assert [line.text for line in result] == [
        "Created",
        "Released: Planned → Released",
        "Made ready: Pending → Ready",
        "Started: Ready → Running",
        "Started: Released → In progress",
        "+40 good, +2 scrap reported",
        "Check recorded",
        "Opened",
        "Put on hold: In progress → On hold",
        "Dispositioned: Open → Closed",
        "Released: On hold → In progress",
        "Priority: Normal → Rush; Due: Tue 01 Dec 19:00 → Wed 02 Dec 18:20",
        "Projected end set to Tue 01 Dec 20:40; now at risk: it ends after the due date",
        "+20 good from the PLC (M-01)",
        "Completed: Running → Done",
        "Cancelled: In progress → Cancelled",
    ]
    details = [line.details for line in result]
    assert (
        details[0] == "Status: Planned; Quantity: 500; Product: P-1; Routing: R-1; Priority: Normal"
    )
    assert details[3] == "Machine: M-01"
    assert details[5] == "now 40 good, 2 scrap"
    assert details[6] == "Check: Bore; Sample: #1; Values: 10.02 mm; Verdict: Out of spec"
    assert (
        details[7]
        == "Status: Open; Operation: WO-1012 op 10; Check: Bore; Reaction: Hold the work order"
    )
    assert details[9] == "Disposition: Use as is; Signature: Approved"
    assert [line.who for line in result][11:14] == ["ERP (erp)", "Scheduler", "PLC M-01"]


def test_no_codes_and_no_raw_timestamps_anywhere():
    for line in lines(every_row_of_a_day()):
        shown = " ".join((line.text, line.who, line.reason, line.details))
        assert not ISO_TIMESTAMP.search(shown), shown
        for code in ("in_progress", "on_hold", "report_quantity", "hold_work_order", "use_as_is"):
            assert code not in shown
        assert "_" not in shown, shown


def test_an_unknown_action_or_status_still_reads_as_words():
    (line,) = lines([person(0, "split_batch", WO, before="in_progress", after="half_done")])
    assert line.text == "Split batch: In progress → Half done"


def test_the_history_speaks_the_users_language():
    rows = [person(5, "hold", WO, before="in_progress", after="on_hold"), replan(6, 300, 1400)]
    with translation.override("de"):
        result = lines(rows)
    # Day and month names (Django's own catalogue) follow the language.
    assert "Mi 02 Dez 08:20" in result[1].text
    # Actions and statuses come from the translated vocabularies (the catalogue has these).
    assert result[0].text.startswith("Angehalten: In Arbeit → Angehalten")


def test_durations_read_as_words():
    assert duration(timedelta(minutes=45)) == "45 min"
    assert duration(timedelta(hours=19, minutes=30)) == "19 h 30 min"
    assert duration(timedelta(days=2, hours=3)) == "2 days 3 h"
    assert duration(timedelta(seconds=10)) == "0 min"


# --- One date format --------------------------------------------------------------------------


def test_the_date_format_on_the_plants_clock():
    assert display_when(T0, zone=BERLIN, now=NOW) == "Tue 01 Dec 09:00"
    assert display_when(T0, zone=zoneinfo.ZoneInfo("America/Chicago"), now=NOW) == (
        "Tue 01 Dec 02:00"
    )
    # Another year: with the year.
    assert display_when(T0 - timedelta(days=365), zone=BERLIN, now=NOW) == "Mon 01 Dec 2025 09:00"
    assert display_when(date(2026, 12, 1), zone=BERLIN, now=NOW) == "Tue 01 Dec"
    assert display_when("2026-12-01T08:00:00Z", zone=BERLIN, now=NOW) == "Tue 01 Dec 09:00"
    assert display_when(None) == ""
    assert display_when("not a date") == "not a date"
    with translation.override("de"):
        assert display_when(T0, zone=BERLIN, now=NOW) == "Di 01 Dez 09:00"


def test_the_when_filter_uses_the_active_time_zone():
    template = Template(
        '{% load mes_format %}{{ t|when }}|{{ empty|when|default:"none" }}|'
        '{% load tz %}{% timezone "Asia/Tokyo" %}{{ t|when }}{% endtimezone %}'
    )
    now = datetime.now(UTC).replace(month=6, day=1, hour=8, minute=0, second=0, microsecond=0)
    shown = template.render(Context({"t": now, "empty": None}))
    # settings.TIME_ZONE is Europe/Berlin in the tests: summer time, +2 h; Tokyo +9 h.
    assert shown == f"{now:%a} 01 Jun 10:00|none|{now:%a} 01 Jun 17:00"


def test_plain_quantities_keep_their_decimals():
    (line,) = lines([plc(0, Decimal("1.5"), Decimal("4"))])
    assert line.text == "+2.5 good from the PLC (M-01)"
