"""Build a believable demo plant. Idempotent: running it again changes nothing.

Master data is created when missing; work orders are created and driven through the real
services (release, start, report, pause, hold, complete, cancel) with back-dated times, so
that their audit history and outbox events look like a real day on the floor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from erp_sync.management.commands.erp_simulator import DEMO_SECRET as DEMO_ERP_SECRET
from erp_sync.models import EventType
from erp_sync.services import upsert_endpoint
from mes import services
from mes.accounts import create_operator
from mes.calendars.models import WEEKDAYS, CalendarException, Shift, ShiftBreak
from mes.choices import MachineState, OperationStatus, Role, WorkOrderStatus
from mes.models import (
    Area,
    Machine,
    Operation,
    OperatorProfile,
    Product,
    Routing,
    RoutingStep,
    Site,
    WorkCenter,
    WorkOrder,
)
from mes.quality import selectors as quality_selectors
from mes.quality import services as quality_services
from mes.quality.choices import CheckKind, Reaction
from mes.quality.models import InspectionCharacteristic
from mes.roles import STAFF_ROLES
from shopfloor.downtime import set_downtime_reason
from shopfloor.models import DowntimeRecord
from shopfloor.plc.demo import configure_demo_connections
from shopfloor.plc.services import StateReading, record_machine_states

SITE = ("PLANT-1", "Riverside Plant", "Europe/Berlin")
AREAS = [("FAB", "Fabrication"), ("ASM", "Assembly and finishing")]
# Three shifts Monday to Friday, two on Saturday, nothing on Sunday; half an hour's break.
MON_FRI = {day: day not in ("saturday", "sunday") for day in WEEKDAYS}
MON_SAT = {day: day != "sunday" for day in WEEKDAYS}
SHIFTS = [
    ("early", "Early shift", time(6), time(14), time(10), MON_SAT),
    ("late", "Late shift", time(14), time(22), time(18), MON_SAT),
    ("night", "Night shift", time(22), time(6), time(2), MON_FRI),
]
HOLIDAYS = [(12, 25, "Christmas Day"), (12, 26, "Boxing Day"), (1, 1, "New Year's Day")]
WORK_CENTERS = [
    (
        "WC-CUT",
        "Laser cutting",
        "FAB",
        [("LASER-01", "Fiber laser 1"), ("LASER-02", "Fiber laser 2")],
    ),
    (
        "WC-BEND",
        "Press brakes",
        "FAB",
        [("BRAKE-01", "Press brake 1"), ("BRAKE-02", "Press brake 2")],
    ),
    ("WC-WELD", "Welding", "ASM", [("WELD-01", "Welding robot 1"), ("WELD-02", "Welding cell 2")]),
    (
        "WC-FIN",
        "Powder coating and packing",
        "ASM",
        [("PAINT-01", "Powder coating line"), ("PACK-01", "Packing station")],
    ),
]
STEP_TEMPLATES = {
    "WC-CUT": (
        "Laser cut blanks",
        600,
        "12",
        "Load sheet {material}. Program {program}. "
        "Check the first part against the drawing before running the batch.",
    ),
    "WC-BEND": (
        "Bend",
        900,
        "20",
        "Tooling: punch 88°, die V16. Measure the first bend angle (±0.5°) and record it.",
    ),
    "WC-WELD": (
        "Weld assembly",
        1200,
        "95",
        "Use fixture {fixture}. Weld seams per drawing; visual check of every seam.",
    ),
    "WC-FIN": (
        "Powder coat and pack",
        1800,
        "30",
        "Degrease, coat RAL 7035, cure 20 min at 180 °C. Pack 10 per carton with label.",
    ),
}
# Inspection plans by work center: what each routing step there checks.
PLANS = {
    "WC-CUT": [
        {
            "code": "HOLE-D",
            "name": "Hole diameter",
            "kind": CheckKind.VARIABLE,
            "nominal": Decimal("8.00"),
            "lower_limit": Decimal("7.95"),
            "upper_limit": Decimal("8.05"),
            "unit": "mm",
            "decimals": 3,
            "first_piece": True,
            "every_n": 50,
            "reaction": Reaction.HOLD_OPERATION,
        }
    ],
    "WC-BEND": [
        {
            "code": "ANGLE",
            "name": "Bend angle",
            "kind": CheckKind.VARIABLE,
            "nominal": Decimal("90"),
            "lower_limit": Decimal("89.5"),
            "upper_limit": Decimal("90.5"),
            "unit": "°",
            "decimals": 2,
            "first_piece": True,
            "every_n": 50,
            "mandatory": False,
            "reaction": Reaction.WARN,
        }
    ],
    "WC-FIN": [
        {
            "code": "VISUAL",
            "name": "Visual inspection",
            "kind": CheckKind.ATTRIBUTE,
            "defect_codes": ["SCRATCH", "COATING", "LABEL"],
            "first_piece": True,
            "last_piece": True,
            "reaction": Reaction.HOLD_WORK_ORDER,
        }
    ],
}
PRODUCTS = [
    ("BRKT-01", "Mounting bracket", ["WC-CUT", "WC-BEND", "WC-FIN"]),
    ("FRAME-02", "Welded machine frame", ["WC-CUT", "WC-BEND", "WC-WELD", "WC-FIN"]),
    ("PANEL-03", "Cover panel", ["WC-CUT", "WC-BEND"]),
    ("HINGE-04", "Hinge plate", ["WC-CUT", "WC-FIN"]),
    ("RACK-05", "Shelf rack", ["WC-CUT", "WC-BEND", "WC-WELD", "WC-FIN"]),
    ("BOX-06", "Electrical enclosure", ["WC-CUT", "WC-BEND", "WC-WELD"]),
]
# (status, how many); 40 work orders in all, numbered WO-1001 upwards.
STATUS_PLAN = [
    (WorkOrderStatus.COMPLETED, 8),
    (WorkOrderStatus.IN_PROGRESS, 12),
    (WorkOrderStatus.ON_HOLD, 3),
    (WorkOrderStatus.RELEASED, 8),
    (WorkOrderStatus.PLANNED, 6),
    (WorkOrderStatus.CANCELLED, 3),
]
PASSWORDS = {"admin": "mes-admin-2026", "supervisor": "mes-super-2026", "planner": "mes-plan-2026"}
OPERATORS = [
    ("ana", "Ana", "Lopez", "1001", "1234"),
    ("ben", "Ben", "Okafor", "1002", "2345"),
    ("chen", "Chen", "Wei", "1003", "3456"),
]
HOLD_REASONS = [
    "Material shortage: sheet 2 mm S235",
    "Customer drawing revision pending",
    "Quality hold: burrs on first parts",
]
CANCEL_REASONS = [
    "Customer cancelled the order",
    "Duplicate order from ERP",
    "Replaced by a rush order",
]
PAUSE_REASONS = ["Waiting for material", "Tool change", "Break"]


@dataclass
class Plant:
    users: dict
    operators: list
    machines_by_center: dict[str, list[Machine]]


class Command(BaseCommand):
    help = "Create the demo plant (site, areas, work centers, machines, products, routings, "
    "users and about 40 work orders in every status). Safe to run again."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            # First, so that the demo ERP receives the seeded history too.
            upsert_endpoint(
                "demo-erp",
                url="http://127.0.0.1:8089/events",
                secret=DEMO_ERP_SECRET,
                event_types=list(EventType.values),
                active=True,
            )
            plant = self._master_data()
            created = self._work_orders(plant)
            self._state_history()
            self._machine_states(plant)
            configure_demo_connections()  # the machines' PLCs: `manage.py simulate_plcs`
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo plant ready: {WorkOrder.objects.count()} work orders "
                f"({created} new), {Machine.objects.count()} machines."
            )
        )
        self.stdout.write(
            "Sign in at http://127.0.0.1:8000/\n"
            f"  admin       / {PASSWORDS['admin']}   (everything, incl. /admin/)\n"
            f"  supervisor  / {PASSWORDS['supervisor']}\n"
            f"  planner     / {PASSWORDS['planner']}\n"
            "  Operator terminal: badge 1001, PIN 1234 (Ana Lopez)"
        )

    # --- master data ------------------------------------------------------------------------

    def _master_data(self) -> Plant:
        code, name, tz = SITE
        site, _ = Site.objects.get_or_create(code=code, defaults={"name": name, "time_zone": tz})
        self._calendar(site)
        areas = {
            c: Area.objects.get_or_create(code=c, defaults={"name": n, "site": site})[0]
            for c, n in AREAS
        }
        centers: dict[str, WorkCenter] = {}
        machines: dict[str, list[Machine]] = {}
        for wc_code, wc_name, area, machine_list in WORK_CENTERS:
            wc, _ = WorkCenter.objects.get_or_create(
                code=wc_code, defaults={"name": wc_name, "area": areas[area]}
            )
            centers[wc_code] = wc
            machines[wc_code] = [
                Machine.objects.get_or_create(code=m, defaults={"name": n, "work_center": wc})[0]
                for m, n in machine_list
            ]
        for index, (p_code, p_name, steps) in enumerate(PRODUCTS):
            product, _ = Product.objects.get_or_create(
                code=p_code, defaults={"name": p_name, "unit": "pcs"}
            )
            routing, created = Routing.objects.get_or_create(
                code=f"{p_code}-A",
                defaults={
                    "product": product,
                    "version": 1,
                    "description": f"Standard routing for {p_name.lower()}",
                },
            )
            if created:
                for seq, wc_code in enumerate(steps, start=1):
                    name, setup, cycle, text = STEP_TEMPLATES[wc_code]
                    RoutingStep.objects.create(
                        routing=routing,
                        sequence=seq * 10,
                        name=name,
                        work_center=centers[wc_code],
                        setup_seconds=setup,
                        cycle_seconds=Decimal(cycle) + index,
                        instructions=text.format(
                            material="S235 2 mm", program=f"{p_code}.nc", fixture=f"FX-{p_code}"
                        ),
                    )
                services.activate_routing(routing)
        for step in RoutingStep.objects.filter(
            routing__code__endswith="-A", work_center__code__in=PLANS
        ).select_related("work_center"):
            if not step.checks.exists():
                for position, plan in enumerate(PLANS[step.work_center.code]):
                    InspectionCharacteristic.objects.create(step=step, position=position, **plan)
        users = {role: self._user(role) for role in PASSWORDS}
        operators = []
        for username, first, last, badge, pin in OPERATORS:
            profile = OperatorProfile.objects.filter(badge=badge).select_related("user").first()
            if profile is None:
                profile = create_operator(
                    username=username, first_name=first, last_name=last, badge=badge, pin=pin
                )
            operators.append(profile.user)
        return Plant(users=users, operators=operators, machines_by_center=machines)

    def _calendar(self, site: Site) -> None:
        """The shift calendar: the live schedule plans in it, OEE counts planned time."""
        for code, name, start, end, pause, days in SHIFTS:
            shift, created = Shift.objects.get_or_create(
                site=site, code=code, defaults={"name": name, "start": start, "end": end, **days}
            )
            if created:
                after = pause.replace(minute=30)
                ShiftBreak.objects.create(shift=shift, start=pause, end=after)
        year = timezone.localdate().year
        for month, day, name in HOLIDAYS:
            for y in (year, year + 1):
                CalendarException.objects.get_or_create(
                    site=site, day=date(y, month, day), kind="closed", defaults={"name": name}
                )

    def _user(self, role: str):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=role,
            defaults={
                "first_name": role.capitalize(),
                "last_name": "Demo",
                "is_staff": role in STAFF_ROLES,
                "is_superuser": role == "admin",
            },
        )
        if created:
            user.set_password(PASSWORDS[role])
            user.save(update_fields=["password"])
            user.groups.add(Group.objects.get(name=Role(role)))
        return user

    # --- work orders ------------------------------------------------------------------------

    def _work_orders(self, plant: Plant) -> int:
        rng = random.Random(1001)
        self._samples: dict[str, int] = {}
        self._supervisor = plant.users["supervisor"]
        now = timezone.now().replace(second=0, microsecond=0)
        routings = list(Routing.objects.filter(active=True).select_related("product"))
        busy: set[int] = set(
            Operation.objects.filter(
                status=OperationStatus.RUNNING, machine__isnull=False
            ).values_list("machine_id", flat=True)
        )
        created, number = 0, 1000
        for status, count in STATUS_PLAN:
            for i in range(count):
                number += 1
                routing = routings[rng.randrange(len(routings))]
                qty = rng.choice([50, 100, 120, 200, 250, 400, 500])
                rush = rng.random() < 0.15
                # Created 16-72 h ago, so history never reaches the future; every fourth open
                # order is due already (late).
                start = now - timedelta(hours=rng.randint(16, 72))
                due = start + timedelta(hours=rng.randint(24, 120))
                if (
                    status not in (WorkOrderStatus.COMPLETED, WorkOrderStatus.CANCELLED)
                    and i % 4 == 1
                ):
                    due = now - timedelta(hours=rng.randint(1, 20))
                wo_number = f"WO-{number}"
                if WorkOrder.objects.filter(number=wo_number).exists():
                    continue
                self._drive(plant, rng, wo_number, routing, qty, rush, due, start, status, i, busy)
                created += 1
        return created

    def _drive(self, plant, rng, number, routing, qty, rush, due, start: datetime, status, i, busy):
        supervisor, planner = plant.users["supervisor"], plant.users["planner"]
        operator = plant.operators[i % len(plant.operators)]
        erp = services.Actor.system("erp:demo")
        wo = services.create_work_order(
            number=number,
            product=routing.product,
            routing=routing,
            quantity=qty,
            due_date=due,
            priority="rush" if rush else "normal",
            actor=erp,
            at=start,
            notes="Customer order" if i % 3 else "",
        )
        if status == WorkOrderStatus.PLANNED:
            return
        if status == WorkOrderStatus.CANCELLED and i % 2 == 0:
            services.cancel_work_order(wo, actor=planner, reason=CANCEL_REASONS[i], at=start)
            return
        wo = services.release_work_order(wo, actor=planner, at=start + timedelta(minutes=5))
        if status == WorkOrderStatus.CANCELLED:
            services.cancel_work_order(
                wo, actor=planner, reason=CANCEL_REASONS[i], at=start + timedelta(minutes=30)
            )
            return
        if status == WorkOrderStatus.RELEASED:
            return
        ops = list(wo.operations.order_by("sequence"))
        clock = start + timedelta(minutes=20)
        if status == WorkOrderStatus.COMPLETED:
            finish = len(ops)
        elif status == WorkOrderStatus.ON_HOLD:
            finish = rng.randrange(len(ops))
        else:  # in progress: somewhere in the middle
            finish = rng.randrange(len(ops))
        for op in ops[:finish]:
            clock, started = self._run_operation(
                plant, rng, op, operator, qty, clock, busy, complete=True
            )
            if not started:  # waits in the queue for a free machine
                return
        if status == WorkOrderStatus.COMPLETED:
            return
        current = ops[finish]
        clock, _ = self._run_operation(
            plant, rng, current, operator, qty, clock, busy, complete=False
        )
        if status == WorkOrderStatus.ON_HOLD:
            services.hold_work_order(wo, actor=supervisor, reason=HOLD_REASONS[i % 3], at=clock)
            self._free(current, busy)

    def _run_operation(self, plant, rng, op, operator, qty, clock, busy, *, complete: bool):
        op = Operation.objects.select_related("work_order").get(pk=op.pk)
        free = [m for m in plant.machines_by_center[op.work_center.code] if m.pk not in busy]
        if not free:  # every machine of the work center is busy: the operation waits (ready)
            return clock, False
        machine = free[0]
        op = services.start_operation(op, operator=operator, machine=machine, at=clock)
        busy.add(machine.pk)
        self._record_checks(rng, op, operator, clock)
        target = qty if complete else int(qty * rng.uniform(0.2, 0.8))
        scrap = rng.randint(0, max(1, qty // 50))
        for chunk in (target // 2, target - target // 2):
            clock += timedelta(minutes=rng.randint(15, 90))
            if chunk:
                op = services.report_quantity(op, actor=operator, good=chunk, at=clock)
                self._record_checks(rng, op, operator, clock)
        if scrap:
            op = services.report_quantity(
                op,
                actor=operator,
                scrap=scrap,
                at=clock,
                reason="Surface defect",
                scrap_reason="SURF",
            )
        if complete:
            clock += timedelta(minutes=5)
            self._record_checks(rng, op, operator, clock, completing=True)
            services.complete_operation(op, actor=operator, at=clock)
            busy.discard(machine.pk)
        elif rng.random() < 0.4:
            clock += timedelta(minutes=3)
            reason = PAUSE_REASONS[rng.randrange(len(PAUSE_REASONS))]
            services.pause_operation(op, actor=operator, reason=reason, at=clock)
            busy.discard(machine.pk)
        return clock, True

    def _record_checks(self, rng, op, operator, clock, *, completing=False) -> None:
        """Record what is due, in spec. The supervisor froze the hole diameters' control
        limits after 20 steady samples; then a worn punch made the holes of a routing drift
        upwards until its 28th sample (the punch was replaced), so the SPC pages show the
        drift against the frozen limits and the rule violations it caused."""
        op = Operation.objects.select_related("work_order").get(pk=op.pk)
        for due in quality_selectors.due_checks(op, completing=completing, now=clock):
            check = due.check
            if check.kind == CheckKind.ATTRIBUTE:
                values = ["pass"]
            else:
                n = self._samples[check.series] = self._samples.get(check.series, 0) + 1
                tolerance = float(check.upper_limit - check.nominal)
                drift = 0.0
                if check.code == "HOLE-D" and 20 < n <= 28:
                    drift = tolerance * min(0.3, 0.06 * (n - 19))
                noise = max(-0.3, min(0.3, rng.gauss(0, 0.1))) * tolerance
                value = float(check.nominal) + drift + noise
                values = [f"{value:.{check.decimals}f}"]
            quality_services.record_result(
                op,
                check=check,
                values=values,
                sample_key=due.sample.key,
                actor=operator,
                at=clock,
            )
            if check.code == "HOLE-D" and self._samples.get(check.series) == 20:
                quality_services.freeze_baseline(check.series, actor=self._supervisor, at=clock)

    def _free(self, op, busy):
        op = Operation.objects.get(pk=op.pk)
        if op.machine_id:
            busy.discard(op.machine_id)

    # --- machines -----------------------------------------------------------------------------

    def _state_history(self, hours: int = 8) -> None:
        """The last hours of every new machine as its PLC would have reported them (through
        the PLC services: state events, stops, the OEE rollups), so that the board, OEE and
        the downtime Pareto have a shift to show at once. Some stops got their reason from
        the operator; the latest ones still wait for it."""
        machines = list(Machine.objects.filter(state=MachineState.UNKNOWN).order_by("code"))
        if not machines:
            return
        rng = random.Random(2026)
        now = timezone.now()
        running = {
            op.machine_id: op
            for op in Operation.objects.filter(
                status=OperationStatus.RUNNING, machine__isnull=False
            )
        }
        reasons = ["MECH-TOOL", "MAT-MISSING", "PLAN-CLEAN", "ELEC-SENSOR", "QUAL-ADJUST"]
        operator = get_user_model().objects.filter(operator_profile__badge="1001").first()
        for machine in machines:
            op = running.get(machine.pk)
            at = now - timedelta(hours=hours)
            readings = [(MachineState.IDLE, at)]
            while op is not None and at < now - timedelta(minutes=20):
                at += timedelta(minutes=rng.randint(12, 50))
                stop = rng.choices(["idle", "down", "setup"], [6, 2, 1])[0]
                readings.append((stop, at))
                at += timedelta(seconds=rng.choice([40, 70, 300, 600, 1200]))
                readings.append((MachineState.RUNNING, at))
            readings = [r for r in readings if r[1] < now]
            if machine.code == "BRAKE-02":  # down since 42 minutes, waiting for its reason
                broke = now - timedelta(minutes=42)
                readings = [r for r in readings if r[1] < broke] + [(MachineState.DOWN, broke)]
            for (state, when), (_next, until) in zip(
                readings, [*readings[1:], (None, now)], strict=True
            ):
                record_machine_states([StateReading(machine.pk, machine.code, state, when)])
                if state == MachineState.RUNNING and op is not None:
                    self._counted(op, when, min(until, now), rng)
        stops = list(
            DowntimeRecord.objects.filter(reason="", ended_at__isnull=False).order_by("started_at")
        )
        for record in stops[:-3] if operator else []:  # the latest three wait for their reason
            set_downtime_reason(
                record, actor=operator, code=rng.choice(reasons), at=record.ended_at
            )

    def _counted(self, op: Operation, start: datetime, end: datetime, rng) -> None:
        """What the PLC counted while running: a bit under standard speed, a little scrap,
        never beyond the order's quantity."""
        op.refresh_from_db()
        left = op.work_order.quantity - op.quantity_good
        cycle = float(op.cycle_seconds) or 30.0
        good = int(min(float(left) * 0.35, (end - start).total_seconds() / cycle * 0.85))
        if good <= 0:
            return
        scrap = 1 if rng.random() < 0.3 else 0
        services.report_quantity(
            op,
            actor=services.Actor.system(f"plc:{op.machine.code}"),
            good=good,
            scrap=scrap,
            scrap_reason="DIM" if scrap else "",
            at=end,
        )

    def _machine_states(self, plant: Plant) -> None:
        """Give machines a believable state the first time (pollers take over later)."""
        running = set(
            Operation.objects.filter(
                status=OperationStatus.RUNNING, machine__isnull=False
            ).values_list("machine_id", flat=True)
        )
        system = services.Actor.system("seed_demo")
        for machine in Machine.objects.filter(state=MachineState.UNKNOWN).order_by("code"):
            if machine.code == "BRAKE-02":
                services.set_machine_state(
                    machine,
                    state=MachineState.DOWN,
                    actor=system,
                    reason="Hydraulic leak on the back gauge",
                )
            elif machine.pk in running:
                services.set_machine_state(machine, state=MachineState.RUNNING, actor=system)
            else:
                services.set_machine_state(machine, state=MachineState.IDLE, actor=system)
