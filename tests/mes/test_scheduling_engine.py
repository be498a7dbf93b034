"""The pure finite-capacity scheduler (:mod:`mes.scheduling.engine`): plain data in and out,
no database. Worked examples with exact planned times, then random plants checked against the
invariants every plan must keep."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mes.scheduling.engine import MachineIn, OperationIn, OrderIn, Plan, PlannedOperation, plan

NOW = datetime(2026, 11, 27, 8, tzinfo=UTC)
ALLOWANCE = timedelta(minutes=30)


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def op(
    id: int,
    wc: int = 1,
    *,
    seq: int | None = None,
    status: str = "pending",
    machine: int | None = None,
    setup: str | int = 0,
    cycle: str | int = 60,
    qty: str | int = 10,
) -> OperationIn:
    """An operation: by default 10 pieces at 60 s, no setup (10 minutes)."""
    return OperationIn(
        id=id,
        sequence=seq if seq is not None else id * 10,
        work_center_id=wc,
        status=status,
        machine_id=machine,
        setup_seconds=Decimal(setup),
        cycle_seconds=Decimal(cycle),
        remaining_quantity=Decimal(qty),
    )


def order(
    id: int,
    *ops: OperationIn,
    rush: bool = False,
    due: datetime | None = None,
    number: str | None = None,
) -> OrderIn:
    return OrderIn(
        id=id,
        number=number or f"WO-{id:04d}",
        rush=rush,
        due=due or at(24 * 60),
        operations=list(ops),
    )


def mc(id: int, wc: int = 1, state: str = "idle") -> MachineIn:
    return MachineIn(id=id, work_center_id=wc, state=state)


def run(orders, machines, *, allowance: timedelta = ALLOWANCE) -> Plan:
    return plan(orders, machines, now=NOW, down_allowance=allowance)


def planned(start: float, end: float, machine: int | None) -> PlannedOperation:
    return PlannedOperation(start=at(start), end=at(end), machine_id=machine)


# --- one order ---------------------------------------------------------------------------------


def test_single_operation_takes_setup_plus_quantity_times_cycle():
    # 300 s setup + 10 x 30 s = 600 s.
    result = run([order(1, op(1, setup=300, cycle=30, qty=10))], [mc(1)])

    assert result.operations == {1: planned(0, 10, 1)}
    assert result.projected_end == {1: at(10)}


def test_operations_of_an_order_run_in_sequence_on_one_machine():
    result = run(
        [order(1, op(1, setup=300, cycle=30, qty=10), op(2, setup=120, cycle=60, qty=3))], [mc(1)]
    )

    assert result.operations == {1: planned(0, 10, 1), 2: planned(10, 15, 1)}
    assert result.projected_end == {1: at(15)}


def test_next_operation_waits_for_its_predecessor_even_when_its_machine_is_free():
    result = run([order(1, op(1, wc=1, qty=20), op(2, wc=2, qty=5))], [mc(1, wc=1), mc(2, wc=2)])

    assert result.operations == {1: planned(0, 20, 1), 2: planned(20, 25, 2)}
    assert result.projected_end == {1: at(25)}


def test_fractional_times_are_exact_to_the_microsecond():
    # 7.5 s setup + 3.25 x 1.5 s = 12.375 s.
    result = run([order(1, op(1, setup="7.5", cycle="1.5", qty="3.25"))], [mc(1)])

    assert result.operations[1].end - result.operations[1].start == timedelta(seconds=12.375)


# --- several machines in a work center ---------------------------------------------------------


def test_two_orders_run_in_parallel_on_two_machines():
    result = run([order(1, op(1, qty=10)), order(2, op(2, qty=20))], [mc(1), mc(2)])

    assert result.operations == {1: planned(0, 10, 1), 2: planned(0, 20, 2)}
    assert result.projected_end == {1: at(10), 2: at(20)}


def test_third_order_goes_to_the_machine_that_frees_first():
    orders = [order(1, op(1, qty=30)), order(2, op(2, qty=10)), order(3, op(3, qty=5))]

    result = run(orders, [mc(1), mc(2)])

    assert result.operations == {
        1: planned(0, 30, 1),
        2: planned(0, 10, 2),
        3: planned(10, 15, 2),  # machine 2 is free at 10, machine 1 only at 30
    }


def test_a_tie_goes_to_the_lower_machine_id_whatever_the_input_order():
    orders = [order(1, op(1, qty=10)), order(2, op(2, qty=10)), order(3, op(3, qty=10))]

    result = run(orders, [mc(7), mc(3)])

    assert result.operations == {
        1: planned(0, 10, 3),
        2: planned(0, 10, 7),
        3: planned(10, 20, 3),  # both free at 10: the lower id
    }


# --- dispatch order ----------------------------------------------------------------------------


def test_rush_goes_first_even_when_due_later():
    normal = order(1, op(1, qty=10), due=at(60), number="WO-0001")
    rush = order(2, op(2, qty=10), due=at(600), number="WO-0002", rush=True)

    result = run([normal, rush], [mc(1)])

    assert result.operations == {2: planned(0, 10, 1), 1: planned(10, 20, 1)}


def test_then_the_earliest_due_date():
    late = order(1, op(1, qty=10), due=at(600), number="WO-0001")
    early = order(2, op(2, qty=10), due=at(300), number="WO-0002")
    rush_late = order(3, op(3, qty=10), due=at(900), number="WO-0003", rush=True)
    rush_early = order(4, op(4, qty=10), due=at(800), number="WO-0004", rush=True)

    result = run([late, early, rush_late, rush_early], [mc(1)])

    assert result.operations == {
        4: planned(0, 10, 1),
        3: planned(10, 20, 1),
        2: planned(20, 30, 1),
        1: planned(30, 40, 1),
    }


def test_then_the_number():
    due = at(120)
    orders = [
        order(1, op(1, qty=10), due=due, number="WO-0003"),
        order(2, op(2, qty=10), due=due, number="WO-0001"),
        order(3, op(3, qty=10), due=due, number="WO-0002"),
    ]

    result = run(orders, [mc(1)])

    assert result.operations == {
        2: planned(0, 10, 1),
        3: planned(10, 20, 1),
        1: planned(20, 30, 1),
    }


def test_an_earlier_order_takes_every_step_before_a_later_one():
    # Order 1 goes first on both work centers; order 2's second step waits for machine 2.
    orders = [
        order(1, op(1, wc=1, qty=10), op(2, wc=2, qty=30), due=at(100)),
        order(2, op(3, wc=1, qty=10), op(4, wc=2, qty=10), due=at(200)),
    ]

    result = run(orders, [mc(1, wc=1), mc(2, wc=2)])

    assert result.operations == {
        1: planned(0, 10, 1),
        2: planned(10, 40, 2),
        3: planned(10, 20, 1),
        4: planned(40, 50, 2),
    }
    assert result.projected_end == {1: at(40), 2: at(50)}


def test_a_later_order_fills_an_idle_gap_it_fits_in_without_moving_earlier_bookings():
    """Machine 2 idles 0-10 while order 1's second step waits for its first: order 2's
    5-minute step runs there; a step too long for the gap goes after the last booking."""
    orders = [
        order(1, op(1, wc=1, qty=10), op(2, wc=2, qty=10), due=at(100)),
        order(2, op(3, wc=2, qty=5), due=at(200)),
        order(3, op(4, wc=2, qty=8), due=at(300)),
        order(4, op(5, wc=2, qty=4), due=at(400)),
    ]

    result = run(orders, [mc(1, wc=1), mc(2, wc=2)])

    assert result.operations == {
        1: planned(0, 10, 1),
        2: planned(10, 20, 2),
        3: planned(0, 5, 2),  # in the gap
        4: planned(20, 28, 2),  # 8 minutes do not fit in the 5 left: after the last booking
        5: planned(5, 9, 2),  # the rest of the gap
    }
    assert result.projected_end == {1: at(20), 2: at(5), 3: at(28), 4: at(9)}


# --- work on a machine -------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["running", "paused"])
def test_work_on_a_machine_stays_there_first_without_setup(status):
    # 4 pieces left at 60 s: 4 minutes, the 900 s setup is behind it.
    current = order(
        1,
        op(1, status="done", machine=2),
        op(2, status=status, machine=2, setup=900, qty=4),
        op(3, wc=2, setup=60, qty=2),
        due=at(900),
    )

    result = run([current], [mc(1), mc(2), mc(3, wc=2)])

    assert result.operations == {
        2: planned(0, 4, 2),  # on its own machine, though machine 1 is free as well
        3: planned(4, 7, 3),  # its successor waits for it: 60 s setup + 2 x 60 s
    }
    assert result.projected_end == {1: at(7)}


@pytest.mark.parametrize("status", ["running", "paused"])
def test_work_on_a_machine_goes_before_a_rush_order(status):
    current = order(1, op(1, status=status, machine=1, qty=5), due=at(900))
    rush = order(2, op(2, qty=10), due=at(60), rush=True)

    result = run([rush, current], [mc(1)])

    assert result.operations == {1: planned(0, 5, 1), 2: planned(5, 15, 1)}


def test_other_orders_go_to_the_other_machine_or_after_the_running_work():
    running = order(1, op(1, status="running", machine=2, qty=5), due=at(900))
    rush = order(2, op(2, qty=20), rush=True)
    normal = order(3, op(3, qty=10), due=at(100))

    result = run([normal, rush, running], [mc(1), mc(2)])

    assert result.operations == {
        1: planned(0, 5, 2),
        2: planned(0, 20, 1),  # machine 1 is free now, machine 2 only at 5
        3: planned(5, 15, 2),  # after the running work: machine 1 is busy until 20
    }


def test_running_work_without_a_machine_takes_the_first_free_one():
    result = run([order(1, op(1, status="running", qty=5))], [mc(1, state="down"), mc(2)])

    assert result.operations == {1: planned(0, 5, 2)}


def test_running_work_is_planned_from_now_even_with_paused_work_on_its_machine():
    paused = order(1, op(1, status="paused", machine=1, qty=10), rush=True)
    running = order(2, op(2, status="running", machine=1, qty=5))

    result = run([paused, running], [mc(1)])

    # A paused operation can share its machine with one that runs (the services only keep
    # two running ones apart): what runs goes first, whatever the dispatch order says.
    assert result.operations == {2: planned(0, 5, 1), 1: planned(5, 15, 1)}


# --- machine states ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["down", "offline"])
def test_an_unavailable_machine_is_free_after_the_allowance(state):
    result = run([order(1, op(1, qty=10))], [mc(1, state=state)])

    assert result.operations == {1: planned(30, 40, 1)}
    assert result.projected_end == {1: at(40)}


@pytest.mark.parametrize("state", ["down", "offline"])
def test_the_allowance_is_the_callers(state):
    result = run([order(1, op(1, qty=10))], [mc(1, state=state)], allowance=timedelta(hours=2))

    assert result.operations == {1: planned(120, 130, 1)}


def test_the_default_allowance_is_30_minutes():
    result = plan([order(1, op(1, qty=10))], [mc(1, state="down")], now=NOW)

    assert result.operations == {1: planned(30, 40, 1)}


@pytest.mark.parametrize("state", ["idle", "running", "setup", "unknown"])
def test_other_machine_states_are_free_now(state):
    result = run([order(1, op(1, qty=10))], [mc(1, state=state)])

    assert result.operations == {1: planned(0, 10, 1)}


@pytest.mark.parametrize("state", ["down", "offline"])
def test_work_goes_to_an_up_machine_of_the_work_center(state):
    orders = [order(1, op(1, qty=40)), order(2, op(2, qty=10)), order(3, op(3, qty=10))]

    result = run(orders, [mc(1, state=state), mc(2)])

    assert result.operations == {
        1: planned(0, 40, 2),
        2: planned(30, 40, 1),  # machine 1 is back at 30, machine 2 busy until 40
        3: planned(40, 50, 1),  # both free at 40: the lower id
    }


def test_running_work_on_a_down_machine_resumes_after_the_allowance():
    result = run(
        [order(1, op(1, status="running", machine=1, qty=5))], [mc(1, state="down"), mc(2)]
    )

    assert result.operations == {1: planned(30, 35, 1)}


# --- an operation assigned to a machine --------------------------------------------------------


def test_an_assigned_operation_waits_for_its_machine():
    first = order(1, op(1, qty=20), due=at(100))
    assigned = order(2, op(2, status="ready", machine=1, qty=10), due=at(200))
    free = order(3, op(3, qty=10), due=at(300))

    result = run([first, assigned, free], [mc(1), mc(2)])

    assert result.operations == {
        1: planned(0, 20, 1),
        2: planned(20, 30, 1),  # machine 2 is free at 0, but the operation is on machine 1
        3: planned(0, 10, 2),
    }


def test_an_assigned_operation_waits_for_its_down_machine():
    result = run([order(1, op(1, status="ready", machine=1, qty=10))], [mc(1, state="down"), mc(2)])

    assert result.operations == {1: planned(30, 40, 1)}


def test_an_assignment_to_a_machine_not_planned_is_ignored():
    # Machine 9 is not among the (active) machines: any machine of the work center will do.
    result = run([order(1, op(1, status="ready", machine=9, qty=10))], [mc(1)])

    assert result.operations == {1: planned(0, 10, 1)}


# --- finished work -----------------------------------------------------------------------------


def test_done_and_cancelled_operations_are_skipped():
    orders = [
        order(
            1,
            op(1, status="done", qty=0),
            op(2, status="cancelled", qty=10),
            op(3, qty=10),
            op(4, status="cancelled", qty=10),
            op(5, qty=5),
        )
    ]

    result = run(orders, [mc(1)])

    assert result.operations == {3: planned(0, 10, 1), 5: planned(10, 15, 1)}
    assert result.projected_end == {1: at(15)}


def test_an_order_with_nothing_open_has_no_projected_end():
    finished = order(1, op(1, status="done"), op(2, status="cancelled"), due=at(-60))
    empty = order(2, due=at(-60))
    open_ = order(3, op(3, qty=10))

    result = run([finished, empty, open_], [mc(1)])

    assert result.operations == {3: planned(0, 10, 1)}  # the machine is free for order 3
    assert result.projected_end == {3: at(10)}
    assert not result.at_risk(finished)
    assert not result.at_risk(empty)


# --- manual stations ---------------------------------------------------------------------------


def test_a_work_center_without_machines_is_one_manual_lane():
    orders = [
        order(1, op(1, wc=5, qty=10)),
        order(2, op(2, wc=5, qty=20)),
        order(3, op(3, wc=6, qty=5)),
    ]

    result = run(orders, [mc(1, wc=1)])  # a machine elsewhere does not help

    assert result.operations == {
        1: planned(0, 10, None),
        2: planned(10, 30, None),  # serialized behind order 1
        3: planned(0, 5, None),  # another manual work center is its own lane
    }


def test_a_manual_step_between_machine_steps():
    orders = [order(1, op(1, wc=1, qty=10), op(2, wc=5, qty=5), op(3, wc=1, qty=10))]

    result = run(orders, [mc(1, wc=1)])

    assert result.operations == {
        1: planned(0, 10, 1),
        2: planned(10, 15, None),
        3: planned(15, 25, 1),
    }


def test_running_work_at_a_manual_station_is_planned_first():
    orders = [order(1, op(1, wc=5, qty=10), rush=True), order(2, op(2, wc=5, status="running"))]

    result = run(orders, [])

    assert result.operations == {2: planned(0, 10, None), 1: planned(10, 20, None)}


# --- nothing left to make ----------------------------------------------------------------------


def test_a_pending_operation_with_nothing_left_takes_its_setup():
    result = run([order(1, op(1, setup=600, qty=0), op(2, qty=5))], [mc(1)])

    assert result.operations == {1: planned(0, 10, 1), 2: planned(10, 15, 1)}


def test_a_running_operation_with_nothing_left_takes_no_time():
    result = run(
        [order(1, op(1, status="running", machine=1, setup=600, qty=0), op(2, qty=5))], [mc(1)]
    )

    assert result.operations == {1: planned(0, 0, 1), 2: planned(0, 5, 1)}
    assert result.projected_end == {1: at(5)}


def test_more_made_than_ordered_counts_as_nothing_left():
    result = run([order(1, op(1, setup=60, qty=-3))], [mc(1)])

    assert result.operations == {1: planned(0, 1, 1)}


# --- at risk -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "risky"),
    [(at(10) - timedelta(seconds=1), True), (at(10), False), (at(11), False)],
)
def test_at_risk_when_the_projected_end_is_after_the_due_date(due, risky):
    wo = order(1, op(1, qty=10), due=due)

    result = run([wo], [mc(1)])

    assert result.projected_end[1] == at(10)
    assert result.at_risk(wo) is risky


def test_an_order_left_out_of_the_plan_is_not_at_risk():
    assert not Plan().at_risk(order(1, op(1), due=at(-600)))


# --- properties --------------------------------------------------------------------------------

MACHINE_STATES = ["idle", "running", "setup", "unknown", "down", "offline"]
UNPLANNED_MACHINE = 999  # an inactive machine: the caller leaves it out


@st.composite
def plants(draw) -> tuple[list[OrderIn], list[MachineIn], timedelta]:
    machines: list[MachineIn] = []
    by_wc: dict[int, list[int]] = {}
    for wc in range(1, draw(st.integers(1, 3)) + 1):
        by_wc[wc] = []
        for _ in range(draw(st.integers(0, 3))):
            machine_id = len(machines) + 1
            machines.append(MachineIn(machine_id, wc, draw(st.sampled_from(MACHINE_STATES))))
            by_wc[wc].append(machine_id)

    orders: list[OrderIn] = []
    op_id = 0
    for index in range(draw(st.integers(0, 8))):
        count = draw(st.integers(1, 4))
        closed = draw(st.integers(0, count))  # leading operations that are done (or cancelled)
        current = draw(st.sampled_from(["running", "paused", "ready", "pending"]))
        ops = []
        for position in range(count):
            op_id += 1
            wc = draw(st.sampled_from(sorted(by_wc)))
            if position < closed:
                status = draw(st.sampled_from(["done", "done", "cancelled"]))
            elif position == closed:
                status = current
            else:
                status = draw(st.sampled_from(["pending", "pending", "pending", "cancelled"]))
            machine = None
            if status in ("running", "paused", "ready", "done"):
                machine = draw(st.sampled_from([None, UNPLANNED_MACHINE, *by_wc[wc]]))
            ops.append(
                OperationIn(
                    id=op_id,
                    sequence=(position + 1) * 10,
                    work_center_id=wc,
                    status=status,
                    machine_id=machine,
                    setup_seconds=Decimal(draw(st.integers(0, 3600))),
                    cycle_seconds=draw(st.decimals(0, 120, places=2)),
                    remaining_quantity=draw(
                        st.one_of(st.decimals(0, 500, places=1), st.integers(-5, 0).map(Decimal))
                    ),
                )
            )
        orders.append(
            OrderIn(
                id=index + 1,
                number=f"WO-{draw(st.integers(1, 20)):04d}",  # numbers may repeat
                rush=draw(st.booleans()),
                due=NOW + timedelta(minutes=draw(st.integers(-600, 10_000))),
                operations=ops,
            )
        )
    orders = draw(st.permutations(orders))
    machines = draw(st.permutations(machines))
    allowance = timedelta(minutes=draw(st.integers(0, 240)))
    return orders, machines, allowance


def as_seconds(delta: timedelta) -> Decimal:
    return Decimal(delta // timedelta(microseconds=1)) / Decimal(1_000_000)


@settings(max_examples=200, deadline=None, database=None)
@given(plants())
def test_every_plan_keeps_the_invariants(plant):
    orders, machines, allowance = plant
    result = plan(orders, machines, now=NOW, down_allowance=allowance)

    machine_wc = {m.id: m.work_center_id for m in machines}
    unavailable = {m.id for m in machines if m.state in ("down", "offline")}
    wcs_with_machines = set(machine_wc.values())
    open_ops = [o for wo in orders for o in wo.operations if o.open]

    # Every open operation is planned exactly once, and nothing else is.
    assert sorted(result.operations) == sorted(o.id for o in open_ops)

    lanes: dict[tuple, list[PlannedOperation]] = defaultdict(list)
    for o in open_ops:
        p = result.operations[o.id]
        assert p.start >= NOW
        assert as_seconds(p.end - p.start) == o.seconds()
        if o.work_center_id in wcs_with_machines:
            assert p.machine_id is not None
            assert machine_wc[p.machine_id] == o.work_center_id
            if p.machine_id in unavailable:
                assert p.start >= NOW + allowance
            if o.machine_id in machine_wc:  # on, or assigned to, a planned machine: stays
                assert p.machine_id == o.machine_id
            lanes["machine", p.machine_id].append(p)
        else:
            assert p.machine_id is None
            lanes["manual", o.work_center_id].append(p)

    # Nothing overlaps on a machine or a manual lane.
    for booked in lanes.values():
        booked.sort(key=lambda p: (p.start, p.end))
        for before, after in pairwise(booked):
            assert after.start >= before.end

    for wo in orders:
        steps = [result.operations[o.id] for o in wo.operations if o.open]
        # Routing precedence.
        for before, after in pairwise(steps):
            assert after.start >= before.end
        if steps:
            assert result.projected_end[wo.id] == steps[-1].end
            assert result.at_risk(wo) is (steps[-1].end > wo.due)
        else:
            assert wo.id not in result.projected_end
            assert not result.at_risk(wo)
