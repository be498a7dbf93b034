"""Machine availability by hand: declaring a machine down or blocked (with a reason and an
expected return) and back up goes through the service, is audited in words, and the live
schedule re-plans from it as it does after a PLC stop. A PLC machine keeps the latest word."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from mes import services
from mes.errors import Conflict, DomainError, StaleObject, ValidationFailed
from mes.models import AuditRecord, Machine, Operation, WorkOrder
from mes.scheduling.services import replan_if_needed
from shopfloor.downtime import (
    declaration,
    declare_machine_down,
    declare_machine_up,
    open_downtime,
)
from shopfloor.models import DowntimeRecord, MachineConnection, MachineStateEvent
from shopfloor.plc.services import StateReading, record_machine_states
from tests.factories import MachineFactory, make_work_order

from .conftest import connect, cycle
from .conftest import connection as plc_connection

pytestmark = pytest.mark.django_db

SPINDLE = "Mechanical > Spindle (unplanned)"


def fresh(machine: Machine) -> Machine:
    return Machine.objects.get(pk=machine.pk)


def audits(machine: Machine, *actions: str) -> list[AuditRecord]:
    records = AuditRecord.objects.filter(entity_type="machine", entity_id=machine.pk)
    if actions:
        records = records.filter(action__in=actions)
    return list(records.order_by("id"))


def nothing_written(machine: Machine) -> bool:
    return not (
        audits(machine)
        or DowntimeRecord.objects.filter(machine=machine).exists()
        or MachineStateEvent.objects.filter(machine=machine).exists()
    )


def plc_says(machine: Machine, state: str, at=None) -> None:
    """What the poller writes when the machine's PLC reports a new state."""
    record_machine_states([StateReading(machine.pk, machine.code, state, at or timezone.now())])


@pytest.fixture
def one_step(supervisor) -> WorkOrder:
    """A released one-step order at a work center with a single machine (no PLC)."""
    return make_work_order(actor=supervisor, steps=1)


@pytest.fixture
def machine(one_step) -> Machine:
    return one_step.operations.get().work_center.machines.get()


# --- Declaring down -----------------------------------------------------------------------------


def test_declaring_down_sets_state_event_record_expected_return_and_audit(
    machine, one_step, supervisor, operator
):
    op = services.start_operation(one_step.operations.get(), operator=operator, machine=machine)
    now = timezone.now()
    back = now + timedelta(hours=2)

    record = declare_machine_down(
        machine,
        actor=supervisor,
        kind="down",
        code="MECH-SPINDLE",
        note=" bearing noise ",
        expected_back=back,
        at=now,
    )

    reason = f"{SPINDLE}: bearing noise"
    machine = fresh(machine)
    assert (machine.state, machine.state_since, machine.expected_back_at) == ("down", now, back)
    event = MachineStateEvent.objects.get(machine=machine)
    assert (event.state, event.started_at, event.source, event.reason) == (
        "down",
        now,
        "Sam Weber",
        reason,
    )
    record.refresh_from_db()
    assert (record.cause, record.operation, record.started_at, record.ended_at) == (
        "manual",
        op,
        now,
        None,
    )
    assert (record.reason, record.reason_choice.code, record.reason_by, record.reason_at) == (
        reason,
        "MECH-SPINDLE",
        supervisor,
        now,
    )
    state_change, declared = audits(machine)
    assert (state_change.action, state_change.to_state, state_change.actor) == (
        "set_state",
        "down",
        supervisor,
    )
    assert (declared.action, declared.actor_name, declared.occurred_at) == (
        "declare_down",
        "Sam Weber",
        now,
    )
    local = timezone.localtime(back)
    assert declared.reason == (f"Declared down: {reason}; expected back {local:%Y-%m-%d %H:%M %Z}")
    assert declared.changes["downtime"] == record.pk
    assert declared.changes["reason"] == ["", reason]
    assert declared.changes["expected_back"][1] == back.isoformat().replace("+00:00", "Z")
    assert declaration([machine.pk]) == {machine.pk: record}


def test_declaring_blocked_without_a_job_or_an_expected_return(machine, supervisor):
    record = declare_machine_down(
        machine, actor=supervisor, kind="blocked", note="No coil in stock"
    )

    assert (record.cause, record.operation, record.reason, record.reason_choice) == (
        "blocked",
        None,
        "No coil in stock",
        None,
    )
    assert fresh(machine).expected_back_at is None
    declared = audits(machine, "declare_blocked")[0]
    assert declared.reason == "Declared blocked: No coil in stock; expected back: not known"
    assert services.describe_last_change("machine", machine.pk, machine.code).startswith(
        f"{machine.code} was declared blocked by Sam Weber at "
    )


def test_a_declaration_makes_the_schedule_plan_the_machine_from_its_expected_return(
    machine, one_step, supervisor
):
    op = one_step.operations.get()
    now = timezone.now()
    assert replan_if_needed(now=now) is not None
    assert Operation.objects.get(pk=op.pk).planned_start == now
    back = now + timedelta(hours=3)

    declare_machine_down(machine, actor=supervisor, kind="down", note="Crash", expected_back=back)
    summary = replan_if_needed(now=now + timedelta(seconds=2))

    assert summary is not None and summary.changed == 1
    assert machine.code in summary.reason
    planned = Operation.objects.get(pk=op.pk).planned_start
    assert back <= planned < back + timedelta(minutes=1)

    later = now + timedelta(seconds=4)
    declare_machine_up(machine, actor=supervisor, at=later - timedelta(seconds=1))
    summary = replan_if_needed(now=later)

    assert summary is not None and summary.changed == 1
    assert Operation.objects.get(pk=op.pk).planned_start == later


def test_a_new_expected_return_alone_re_plans(machine, one_step, supervisor):
    now = timezone.now()
    declare_machine_down(
        machine, actor=supervisor, kind="down", note="Crash", expected_back=now + timedelta(hours=1)
    )
    replan_if_needed(now=now)
    later_back = now + timedelta(hours=5)

    declare_machine_down(
        machine, actor=supervisor, kind="down", note="Crash", expected_back=later_back
    )
    summary = replan_if_needed(now=now + timedelta(seconds=1))

    assert summary is not None and summary.changed == 1
    assert one_step.operations.get().planned_start >= later_back


# --- Declaring again ----------------------------------------------------------------------------


def test_declaring_a_declared_machine_again_changes_kind_reason_and_expected_return(
    machine, supervisor, planner
):
    now = timezone.now()
    first = declare_machine_down(
        machine,
        actor=supervisor,
        kind="down",
        code="MECH-SPINDLE",
        expected_back=now + timedelta(hours=1),
        at=now,
    )
    back = now + timedelta(hours=4)

    again = declare_machine_down(
        machine,
        actor=planner,
        kind="blocked",
        code="MAT-MISSING",
        expected_back=back,
        at=now + timedelta(minutes=5),
    )

    assert again.pk == first.pk and DowntimeRecord.objects.count() == 1
    assert (again.cause, again.reason, again.reason_by, again.started_at) == (
        "blocked",
        "Material > Material missing (unplanned)",
        planner,
        now,
    )
    machine = fresh(machine)
    assert (machine.state, machine.state_since, machine.expected_back_at) == ("down", now, back)
    assert MachineStateEvent.objects.filter(machine=machine).count() == 1  # no new state
    expected_change, redeclared = audits(machine)[-2:]
    assert (expected_change.action, expected_change.from_state, expected_change.to_state) == (
        "set_state",
        "down",
        "down",
    )
    assert expected_change.changes["expected_back"][1] == back.isoformat().replace("+00:00", "Z")
    assert (redeclared.action, redeclared.actor, redeclared.changes["cause"]) == (
        "declare_blocked",
        planner,
        ["manual", "blocked"],
    )
    assert redeclared.changes["reason"] == [SPINDLE, "Material > Material missing (unplanned)"]


def test_declaring_again_without_an_expected_return_clears_it(machine, supervisor):
    declare_machine_down(
        machine,
        actor=supervisor,
        kind="down",
        note="Crash",
        expected_back=timezone.now() + timedelta(hours=1),
    )

    declare_machine_down(machine, actor=supervisor, kind="down", note="Crash, not known")

    assert fresh(machine).expected_back_at is None


def test_the_same_declaration_twice_changes_nothing_the_second_time(machine, supervisor):
    back = timezone.now() + timedelta(hours=1)
    first = declare_machine_down(
        machine, actor=supervisor, kind="down", note="Crash", expected_back=back, seen=None
    )
    written = len(audits(machine))

    # A retried form: it still says "nothing declared", but asks for exactly what is.
    again = declare_machine_down(
        machine, actor=supervisor, kind="down", note="Crash", expected_back=back, seen=None
    )

    assert again.pk == first.pk
    assert len(audits(machine)) == written


def test_a_declaration_over_what_someone_else_declared_meanwhile_is_refused_with_who(
    machine, supervisor, planner
):
    declare_machine_down(machine, actor=supervisor, kind="down", note="Crash", seen=None)
    written = len(audits(machine))

    with pytest.raises(StaleObject) as refused:
        declare_machine_down(machine, actor=planner, kind="blocked", note="No coil", seen=None)

    assert refused.value.message.startswith(f"{machine.code} was declared down by Sam Weber at ")
    assert refused.value.message.endswith("Nothing was changed; look again.")
    assert open_downtime(machine).reason == "Crash"
    assert len(audits(machine)) == written


@pytest.mark.django_db(transaction=True)
def test_two_supervisors_declaring_at_once_one_wins_the_other_is_told_who(supervisor, planner):
    machine = MachineFactory()
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, object] = {}

    def declare(actor, note: str) -> None:
        try:
            barrier.wait()
            results[note] = declare_machine_down(
                Machine.objects.get(pk=machine.pk),
                actor=actor,
                kind="down",
                note=note,
                seen=None,
            )
        except BaseException as exc:
            results[note] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=declare, args=(supervisor, "Crash")),
        threading.Thread(target=declare, args=(planner, "Coolant leak")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    won = [note for note, r in results.items() if isinstance(r, DowntimeRecord)]
    lost = [r for r in results.values() if isinstance(r, StaleObject)]
    assert len(won) == 1 and len(lost) == 1, results
    winner = "Sam Weber" if won == ["Crash"] else "Pia Novak"
    assert f"was declared down by {winner} at " in lost[0].message
    assert DowntimeRecord.objects.get(machine=machine).reason == won[0]
    assert len(audits(machine, "declare_down")) == 1


# --- Refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"kind": "broken", "note": "x"}, "Say whether the machine is down or blocked."),
        ({"kind": "down"}, "Say why the machine is down."),
        ({"kind": "down", "note": "   "}, "Say why the machine is down."),
        ({"kind": "down", "code": "MECH"}, "“MECH” is not an active downtime reason."),
        ({"kind": "down", "code": "NOPE"}, "“NOPE” is not an active downtime reason."),
        ({"kind": "down", "note": "x" * 501}, "At most 500 characters."),
        (
            {"kind": "down", "note": "x", "expected_back": timedelta(minutes=-1)},
            "The expected return must be in the future.",
        ),
        (
            {"kind": "down", "note": "x", "expected_back": timedelta(days=400)},
            "The expected return is more than a year ahead; make the machine inactive instead.",
        ),
        (
            {"kind": "down", "note": "x", "expected_back": "naive"},
            "Times must carry a time zone.",
        ),
    ],
)
def test_a_declaration_that_is_not_valid_changes_nothing(machine, supervisor, kwargs, message):
    kwargs = dict(kwargs)
    if isinstance(kwargs.get("expected_back"), timedelta):
        kwargs["expected_back"] = timezone.now() + kwargs["expected_back"]
    elif kwargs.get("expected_back") == "naive":
        kwargs["expected_back"] = timezone.now().replace(tzinfo=None) + timedelta(hours=1)
    state = fresh(machine).state

    with pytest.raises(ValidationFailed) as refused:
        declare_machine_down(machine, actor=supervisor, **kwargs)

    assert refused.value.message == message
    assert fresh(machine).state == state
    assert nothing_written(machine)


def test_an_inactive_machine_cannot_be_declared(machine, supervisor):
    Machine.objects.filter(pk=machine.pk).update(is_active=False)

    with pytest.raises(ValidationFailed, match="is not in use"):
        declare_machine_down(machine, actor=supervisor, kind="down", note="Crash")

    assert nothing_written(machine)


def test_a_machine_that_is_not_down_cannot_be_declared_up(machine, supervisor):
    services.set_machine_state(machine, state="running", actor=supervisor)
    written = len(audits(machine))

    with pytest.raises(Conflict) as refused:
        declare_machine_up(machine, actor=supervisor)

    assert refused.value.message == (
        f"{machine.code} is not down (it is running); nothing to bring back up."
    )
    assert len(audits(machine)) == written and fresh(machine).state == "running"


def test_declaring_up_what_someone_else_declared_up_meanwhile_names_them(
    machine, supervisor, planner
):
    record = declare_machine_down(machine, actor=supervisor, kind="down", note="Crash")
    declare_machine_up(machine, actor=planner, seen=record.pk)

    with pytest.raises(StaleObject) as refused:
        declare_machine_up(machine, actor=supervisor, seen=record.pk)

    assert f"{machine.code} was declared back up by Pia Novak at " in refused.value.message
    assert len(audits(machine, "declare_up")) == 1


# --- Declaring up -------------------------------------------------------------------------------


def test_declaring_up_a_machine_without_plc_closes_the_stop_and_makes_it_idle(
    machine, supervisor, planner
):
    now = timezone.now()
    record = declare_machine_down(
        machine, actor=supervisor, kind="down", note="Crash", expected_back=now + timedelta(hours=1)
    )
    up_at = now + timedelta(minutes=20)

    back = declare_machine_up(machine, actor=planner, note="Spindle replaced", at=up_at)

    assert (back.state, back.state_since, back.expected_back_at) == ("idle", up_at, None)
    machine = fresh(machine)
    assert (machine.state, machine.expected_back_at) == ("idle", None)
    record.refresh_from_db()
    assert record.ended_at == up_at
    assert open_downtime(machine) is None and declaration([machine.pk]) == {}
    event = MachineStateEvent.objects.filter(machine=machine).order_by("-started_at").first()
    assert (event.state, event.source, event.reason) == (
        "idle",
        "Pia Novak",
        "Declared back up: Spindle replaced",
    )
    up = audits(machine, "declare_up")[0]
    assert (up.actor, up.reason) == (planner, "Declared back up: Spindle replaced; now idle")
    assert up.changes == {"downtime": record.pk, "state": ["down", "idle"], "was": "Crash"}


def test_a_machine_down_without_a_declaration_can_be_declared_up(machine, supervisor):
    services.set_machine_state(machine, state="down", actor=supervisor)

    assert declare_machine_up(machine, actor=supervisor).state == "idle"


# --- Machines with a PLC ------------------------------------------------------------------------


@pytest.fixture
def plc_machine(machine) -> Machine:
    """The machine with a PLC connection (configured only: the poller is not running)."""
    connect(machine, plc_connection(5020))
    return machine


@pytest.mark.parametrize(
    "last,after", [("running", "running"), ("setup", "setup"), ("down", "idle")]
)
def test_a_plc_machine_declared_up_takes_its_plcs_last_state(plc_machine, supervisor, last, after):
    plc_says(plc_machine, "idle", timezone.now() - timedelta(minutes=10))
    plc_says(plc_machine, last, timezone.now() - timedelta(minutes=5))
    declare_machine_down(plc_machine, actor=supervisor, kind="blocked", note="No coil")

    assert declare_machine_up(plc_machine, actor=supervisor).state == after
    assert fresh(plc_machine).state == after


def test_a_machine_whose_plc_connection_is_disabled_comes_back_idle(plc_machine, supervisor):
    plc_says(plc_machine, "running")
    MachineConnection.objects.filter(machine=plc_machine).update(enabled=False)
    declare_machine_down(plc_machine, actor=supervisor, kind="down", note="Crash")

    assert declare_machine_up(plc_machine, actor=supervisor).state == "idle"


def test_a_stop_the_plc_opened_takes_the_declaration(plc_machine, one_step, supervisor, operator):
    op = services.start_operation(one_step.operations.get(), operator=operator, machine=plc_machine)
    plc_says(plc_machine, "running")
    plc_says(plc_machine, "down")
    stop = open_downtime(plc_machine)
    assert (stop.cause, stop.reason) == ("down", "")
    back = timezone.now() + timedelta(minutes=30)

    record = declare_machine_down(
        plc_machine, actor=supervisor, kind="down", code="MECH-HYD", expected_back=back
    )

    assert record.pk == stop.pk and DowntimeRecord.objects.count() == 1
    assert (record.cause, record.operation, record.reason) == (
        "manual",
        op,
        "Mechanical > Hydraulics (unplanned)",
    )
    assert record.started_at == stop.started_at  # the stop began when the PLC said so
    assert MachineStateEvent.objects.filter(machine=plc_machine, state="down").count() == 1
    assert fresh(plc_machine).expected_back_at == back


def test_the_plc_running_again_ends_the_declaration_and_the_expected_return(
    plc_machine, supervisor
):
    record = declare_machine_down(
        plc_machine,
        actor=supervisor,
        kind="down",
        note="Crash",
        expected_back=timezone.now() + timedelta(hours=1),
    )

    plc_says(plc_machine, "running")

    record.refresh_from_db()
    assert record.ended_at is not None
    assert (fresh(plc_machine).state, fresh(plc_machine).expected_back_at) == ("running", None)


@pytest.mark.parametrize("state,ends", [("idle", True), ("setup", True), ("offline", False)])
def test_the_latest_word_of_the_plc_wins_but_silence_does_not(plc_machine, supervisor, state, ends):
    record = declare_machine_down(plc_machine, actor=supervisor, kind="blocked", note="No coil")

    plc_says(plc_machine, state)

    record.refresh_from_db()
    assert (record.ended_at is not None) is ends
    assert fresh(plc_machine).state == state


def test_the_plc_confirming_down_keeps_the_expected_return(plc_machine, supervisor):
    back = timezone.now() + timedelta(hours=1)
    declare_machine_down(
        plc_machine, actor=supervisor, kind="down", note="Crash", expected_back=back
    )
    written = len(audits(plc_machine))

    plc_says(plc_machine, "down")

    assert fresh(plc_machine).expected_back_at == back
    assert len(audits(plc_machine)) == written


def test_with_the_poller_a_declared_machine_stays_down_until_its_plc_changes(
    supervisor, plc, poller, clock
):
    machine = MachineFactory()
    connect(machine, plc_connection(plc.port))
    plc.state("running")
    cycle(poller, clock)
    assert fresh(machine).state == "running"

    record = declare_machine_down(machine, actor=supervisor, kind="blocked", note="Quality stop")
    cycle(poller, clock)
    cycle(poller, clock)
    assert fresh(machine).state == "down"  # the PLC still says running: no news, no change
    assert open_downtime(machine) == record

    plc.state("idle")
    cycle(poller, clock)
    assert fresh(machine).state == "idle"
    record.refresh_from_db()
    assert record.ended_at is not None


# --- Reads --------------------------------------------------------------------------------------


def test_declaration_reads_only_declared_stops_in_one_query(supervisor, django_assert_num_queries):
    declared, plc_stop, up = MachineFactory(), MachineFactory(), MachineFactory()
    record = declare_machine_down(declared, actor=supervisor, kind="down", note="Crash")
    DowntimeRecord.objects.create(machine=plc_stop, cause="down", started_at=timezone.now())
    declare_machine_down(up, actor=supervisor, kind="down", note="Crash")
    declare_machine_up(up, actor=supervisor)

    with django_assert_num_queries(1):
        found = declaration([declared.pk, plc_stop.pk, up.pk])
        assert found == {declared.pk: record}
        assert found[declared.pk].declared_by == "Sam Weber"


def test_services_refuse_a_naive_expected_return_in_set_machine_state(machine, supervisor):
    with pytest.raises(DomainError):
        services.set_machine_state(
            machine,
            state="down",
            actor=supervisor,
            expected_back=timezone.now().replace(tzinfo=None),
        )
    assert nothing_written(machine)
