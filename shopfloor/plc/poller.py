"""A poll group's cycle: which devices are due, reading them all concurrently, change
detection, and the database writes.

One :class:`GroupPoller` per group and worker process keeps the devices between cycles:
their pymodbus connections (on the process's loop thread), the last raw counter values
and state it wrote, failure counts and backoff. The database stays the truth: the poller
reloads a device's counters whenever its write finds them changed by someone else, and its
configuration whenever the group's connections or profiles change.

A cycle waits for answers at most ``wait`` seconds. A device that has not answered by then
(a dead PLC, bounded by its own timeout) stays in flight on the loop thread and its outcome
is processed by a later cycle, so it never delays the others.

"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import queue
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Max, Q
from django.utils import timezone

from mes import netguard
from mes.choices import MachineState
from shopfloor.downtime import idle_too_long, open_idle_downtimes
from shopfloor.models import MachineConnection, PlcStatus

from .counters import StepKind, counter_step, plausible_step
from .modbus import DeviceLink, Endpoint, LoopThread, ReadFailure, ReadOutcome, poll, shared_loop
from .registers import (
    CounterSpec,
    DecodeError,
    ReadPlan,
    RegisterMap,
    SpecError,
    decode_reading,
    parse_register_map,
    plan_reads,
)
from .services import (
    FailureWrite,
    ReadWrite,
    StateReading,
    record_machine_states,
    store_poll_results,
)
from .timing import retry_delay

logger = logging.getLogger("shopfloor.plc")

IDLE_RECHECK_SECONDS = 30.0
_END_OF_WAIT = object()
_CONNECTION_FIELDS = (
    "machine_id",
    "machine__code",
    "machine__state",
    "machine__state_since",
    "host",
    "port",
    "unit_id",
    "poll_interval_ms",
    "timeout_ms",
    "profile_id",
    "profile__register_map",
    "register_map",
)


@dataclass(frozen=True)
class PollerOptions:
    wait: float  # seconds a cycle waits for answers
    offline_after: int  # failed polls in a row before a machine is offline
    backoff_max: float  # seconds between attempts on a dead device, at most
    idle_downtime_after: float  # seconds idle, with an operation running, before a downtime
    max_parts_per_second: float  # plausibility bound of counter steps
    resync_every: float = 60.0  # seconds between full reloads from the database
    config_check_every: float = 1.0  # seconds between looks for configuration changes

    @classmethod
    def from_settings(cls, **overrides: Any) -> PollerOptions:
        values: dict[str, Any] = {
            "wait": settings.MES_PLC_WAIT_MS / 1000,
            "offline_after": settings.MES_PLC_OFFLINE_AFTER,
            "backoff_max": float(settings.MES_PLC_BACKOFF_MAX_SECONDS),
            "idle_downtime_after": float(settings.MES_PLC_IDLE_DOWNTIME_SECONDS),
            "max_parts_per_second": float(settings.MES_PLC_MAX_PARTS_PER_SECOND),
        }
        values.update(overrides)
        return cls(**values)


@dataclass(eq=False)
class Device:
    """What the poller knows about one machine between cycles."""

    machine_id: int
    code: str
    endpoint: Endpoint
    interval: float
    regmap: RegisterMap
    plan: ReadPlan
    link: DeviceLink
    state: str
    state_since: datetime
    version: int = 0
    good_raw: int | None = None
    scrap_raw: int | None = None
    raw_at: datetime | None = None  # when the raw values were read
    failures: int = 0
    first_failure_at: datetime | None = None
    next_due: float = 0.0
    launched_at: float = 0.0
    in_flight: bool = False  # a read was started and its outcome not processed yet
    idle_check_at: float = 0.0


@dataclass
class CycleReport:
    group: str
    devices: int = 0
    polled: int = 0  # reads started this cycle
    answered: int = 0  # outcomes processed with an answer
    failed: int = 0  # outcomes processed with a failure
    state_changes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    read_seconds: float = 0.0
    write_seconds: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "errors": dict(self.errors)}


@dataclass
class _Batch:
    reads: list[tuple[Device, ReadWrite]] = field(default_factory=list)
    failures: list[FailureWrite] = field(default_factory=list)
    states: list[StateReading] = field(default_factory=list)


class GroupPoller:
    def __init__(
        self,
        group: str = "default",
        *,
        options: PollerOptions | None = None,
        loop: LoopThread | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group = group
        self.options = options or PollerOptions.from_settings()
        self.loop = loop or shared_loop()
        self.clock = clock
        self.devices: dict[int, Device] = {}
        self._signature: tuple[Any, ...] | None = None
        self._loaded_at = self._checked_at = float("-inf")
        self._tasks: set[asyncio.Task] = set()  # reads in flight; loop thread only
        # Outcomes (and one end-of-wait marker per cycle) from the loop thread, in order.
        self._outcomes: queue.SimpleQueue[Any] = queue.SimpleQueue()

    # --- configuration ------------------------------------------------------------------------

    def _connections(self):
        return MachineConnection.objects.filter(group=self.group)

    def _current_signature(self) -> tuple[Any, ...]:
        """Changes whenever a connection or profile of the group is added, changed or removed,
        or a machine is (de)activated: one aggregate query per cycle."""
        values = self._connections().aggregate(
            n=Count("pk"),
            changed=Max("updated_at"),
            profiles=Max("profile__updated_at"),
            live=Count("pk", filter=Q(enabled=True, machine__is_active=True)),
        )
        return tuple(values.values())

    def refresh(self, *, force: bool = False) -> bool:
        """Reload the group's configuration when it changed (looking at most once per
        ``config_check_every``). Returns True when reloaded."""
        now = self.clock()
        if not force and now - self._checked_at < self.options.config_check_every:
            return False
        self._checked_at = now
        signature = self._current_signature()
        stale = now - self._loaded_at >= self.options.resync_every
        if not force and not stale and signature == self._signature:
            return False
        self._load()
        self._signature, self._loaded_at = signature, now
        return True

    def _statuses(self) -> dict[int, tuple[Any, ...]]:
        rows = PlcStatus.objects.filter(machine__plc_connection__group=self.group).values_list(
            "machine_id", "version", "good_raw", "scrap_raw", "last_read_at", "consecutive_failures"
        )
        return {row[0]: row for row in rows}

    def _load(self) -> None:
        # Plain rows, not model instances: a group may have thousands of machines.
        rows = list(
            self._connections()
            .filter(enabled=True, machine__is_active=True)
            .values_list(*_CONNECTION_FIELDS)
        )
        statuses = self._statuses()
        missing = [row[0] for row in rows if row[0] not in statuses]
        if missing:
            PlcStatus.objects.bulk_create(
                [PlcStatus(machine_id=pk) for pk in missing], ignore_conflicts=True
            )
            statuses = self._statuses()
        parsed: dict[str, tuple[RegisterMap, ReadPlan]] = {}
        fresh: dict[int, Device] = {}
        allow = netguard.allow_list(tuple(settings.MES_OUTBOUND_ALLOWED_HOSTS))
        for row in rows:
            conn = dict(zip(_CONNECTION_FIELDS, row, strict=True))
            device = self._device_for(conn, statuses[conn["machine_id"]], parsed, allow)
            if device is not None:
                fresh[device.machine_id] = device
        for machine_id, old in self.devices.items():
            if machine_id not in fresh or fresh[machine_id].link is not old.link:
                self.loop.call(old.link.close)
        self.devices = fresh

    def _parse(self, raw: Any, parsed: dict[str, tuple[RegisterMap, ReadPlan]]):
        key = repr(raw)
        if key not in parsed:
            regmap = parse_register_map(raw)
            parsed[key] = (regmap, plan_reads(regmap))
        return parsed[key]

    def _device_for(
        self, conn: dict[str, Any], status_row, parsed, allow: netguard.AllowList
    ) -> Device | None:
        code = conn["machine__code"]
        raw_map = conn["profile__register_map"] if conn["profile_id"] else conn["register_map"]
        try:
            regmap, plan = self._parse(raw_map, parsed)
        except SpecError as exc:
            logger.error("PLC %s: register map not usable, not polled: %s", code, exc)
            return None
        endpoint = Endpoint(conn["host"], conn["port"], conn["unit_id"], conn["timeout_ms"] / 1000)
        _, version, good_raw, scrap_raw, read_at, failures = status_row
        old = self.devices.get(conn["machine_id"])
        same = old is not None and old.endpoint == endpoint and old.link.allow == allow
        link = old.link if same else None
        device = Device(
            machine_id=conn["machine_id"],
            code=code,
            endpoint=endpoint,
            interval=conn["poll_interval_ms"] / 1000,
            regmap=regmap,
            plan=plan,
            link=link or DeviceLink(endpoint, name=code, allow=allow),
            state=conn["machine__state"],
            state_since=conn["machine__state_since"],
            version=version,
            good_raw=good_raw,
            scrap_raw=scrap_raw,
            raw_at=read_at,
            failures=failures,
        )
        if old is not None:
            device.first_failure_at = old.first_failure_at
            device.next_due, device.launched_at = old.next_due, old.launched_at
            device.in_flight = old.in_flight and link is not None
            device.idle_check_at = old.idle_check_at if old.state == device.state else 0.0
        return device

    def _resync_statuses(self) -> None:
        for machine_id, version, good_raw, scrap_raw, read_at, _ in self._statuses().values():
            device = self.devices.get(machine_id)
            if device is not None:
                device.version, device.good_raw, device.scrap_raw = version, good_raw, scrap_raw
                device.raw_at = read_at

    # --- the cycle ----------------------------------------------------------------------------

    def due_devices(self, now: float) -> list[Device]:
        return [
            d
            for d in self.devices.values()
            if not d.in_flight and d.next_due <= now + min(0.2, d.interval / 5)
        ]

    def next_due(self) -> float | None:
        return min((d.next_due for d in self.devices.values()), default=None)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            self._outcomes.put(task.result())

    async def _launch_and_wait(self, due: Sequence[Device], wait: float) -> None:
        """Start a read per due device, then wait (at most ``wait``) for every read in flight;
        outcomes go to the queue as they complete, the end of the wait after them."""
        for device in due:
            task = asyncio.create_task(poll(device.link, device.plan.spans, (device, device.link)))
            task.add_done_callback(self._finished)
            self._tasks.add(task)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=wait)
        self._outcomes.put(_END_OF_WAIT)

    def run_cycle(self) -> CycleReport:
        """Poll every due device of the group once and write what changed."""
        begin = time.perf_counter()
        # A cycle allocates hundreds of thousands of short-lived objects (tasks, frames,
        # answers) that reference counting frees; the cyclic collector would scan them
        # hundreds of times per cycle. Pause it, and collect the young survivors once after.
        collecting = gc.isenabled()
        gc.disable()
        try:
            report, read_done = self._cycle()
        finally:
            if collecting:
                gc.collect(1)
                gc.enable()
        end = time.perf_counter()
        report.read_seconds, report.write_seconds = read_done - begin, end - read_done
        report.seconds = end - begin
        if report.answered:
            _freeze_heap_once()
        return report

    def _cycle(self) -> tuple[CycleReport, float]:
        report = CycleReport(group=self.group)
        self.refresh()
        report.devices = len(self.devices)
        started = self.clock()
        due = self.due_devices(started)
        for device in due:
            device.in_flight = True
            device.launched_at, device.next_due = started, started + device.interval
        report.polled = len(due)
        exchange = asyncio.run_coroutine_threadsafe(
            self._launch_and_wait(due, self.options.wait), self.loop.loop
        )
        # Wait without waking for every answer: this thread and the loop share one GIL.
        exchange.result(timeout=self.options.wait + 30)
        batch = _Batch()
        self._consume(batch, report)
        read_done = time.perf_counter()
        self._write(batch, report)
        self._check_idle()
        return report, read_done

    def _consume(self, batch: _Batch, report: CycleReport) -> None:
        """Take the outcomes queued before this cycle's end-of-wait marker; later ones (reads
        still in flight) belong to the next cycle."""
        while (outcome := self._outcomes.get_nowait()) is not _END_OF_WAIT:
            self._take(outcome, batch, report)

    def run_window(self, seconds: float) -> list[CycleReport]:
        """Cycles for up to ``seconds``: one, or more for devices polled faster than the beat
        that starts each window. No cycle starts after 0.9 of it, even when an earlier one
        overran: the window must end within its lease (``timing.poll_lease_seconds``)."""
        end = self.clock() + seconds * 0.9
        reports = [self.run_cycle()]
        while (upcoming := self.next_due()) is not None and upcoming < end:
            time.sleep(max(0.0, upcoming - self.clock()))
            if self.clock() >= end:
                break
            reports.append(self.run_cycle())
        return reports

    # --- change detection -----------------------------------------------------------------------

    def _take(self, outcome: ReadOutcome, batch: _Batch, report: CycleReport) -> None:
        device, link = outcome.key
        current = self.devices.get(device.machine_id)
        if current is not None and current.link is link:
            current.in_flight = False
        if current is not device or device.link is not link:
            return  # reconfigured while the read was in flight: its plan may be stale
        if outcome.failure is None:
            try:
                self._on_answer(device, outcome, batch)
                report.answered += 1
                return
            except DecodeError as exc:
                outcome.failure = ReadFailure("malformed", str(exc))
                self.loop.call(device.link.close)  # the loop thread owns the connection
        report.failed += 1
        report.errors[outcome.failure.kind] += 1
        self._on_failure(device, outcome, batch)

    def _counter(
        self,
        device: Device,
        spec: CounterSpec | None,
        previous: int | None,
        value: int | None,
        elapsed: float,
        what: str,
    ) -> int:
        """Parts since the previous reading of one counter (0 for a new baseline)."""
        if spec is None or value is None or value == previous:
            return 0
        max_step = plausible_step(
            bits=spec.bits, max_rate=self.options.max_parts_per_second, elapsed_seconds=elapsed
        )
        step = counter_step(previous, value, bits=spec.bits, max_step=max_step)
        if step.kind in (StepKind.RESET, StepKind.IMPLAUSIBLE):
            logger.warning(
                "PLC %s: %s counter went from %s to %s: %s (%s counted)",
                device.code,
                what,
                previous,
                value,
                step.kind,
                step.delta,
            )
        return step.delta

    def _on_answer(self, device: Device, outcome: ReadOutcome, batch: _Batch) -> None:
        assert outcome.values is not None
        reading = decode_reading(device.plan, device.regmap, outcome.values)
        regmap = device.regmap
        elapsed = (outcome.at - device.raw_at).total_seconds() if device.raw_at else 0.0
        good = self._counter(
            device, regmap.good_count, device.good_raw, reading.good, elapsed, "good"
        )
        scrap = self._counter(
            device, regmap.scrap_count, device.scrap_raw, reading.scrap, elapsed, "scrap"
        )
        state = regmap.state_for(reading.state_code)
        note = ""
        if state is None:
            state = MachineState.UNKNOWN
            note = f"State code {reading.state_code} is not in the state map."
        batch.reads.append(
            (
                device,
                ReadWrite(
                    machine_id=device.machine_id,
                    version=device.version,
                    good_raw=reading.good,
                    scrap_raw=reading.scrap,
                    good_delta=good,
                    scrap_delta=scrap,
                    read_at=outcome.at,
                    note=note,
                ),
            )
        )
        if device.failures:
            logger.info("PLC %s (%s) answers again", device.code, device.endpoint)
        device.failures, device.first_failure_at = 0, None
        if state != device.state:
            batch.states.append(StateReading(device.machine_id, device.code, state, outcome.at))

    def _on_failure(self, device: Device, outcome: ReadOutcome, batch: _Batch) -> None:
        failure = outcome.failure
        assert failure is not None
        device.failures += 1
        device.first_failure_at = device.first_failure_at or outcome.at
        offline_after = self.options.offline_after
        level = logging.WARNING if device.failures <= offline_after else logging.INFO
        logger.log(
            level,
            "PLC %s (%s): %s: %s [%d in a row]",
            device.code,
            device.endpoint,
            failure.kind,
            failure.message,
            device.failures,
        )
        delay = retry_delay(
            device.failures,
            interval=device.interval,
            offline_after=offline_after,
            cap=max(self.options.backoff_max, device.interval),
        )
        device.next_due = device.launched_at + delay
        shown = failure.shown(device.endpoint)  # the log above has the details
        batch.failures.append(
            FailureWrite(device.machine_id, device.failures, shown[:1000], outcome.at)
        )
        if device.failures >= offline_after and device.state != MachineState.OFFLINE:
            batch.states.append(
                StateReading(
                    device.machine_id,
                    device.code,
                    MachineState.OFFLINE,
                    device.first_failure_at,
                    reason=(shown[:1].upper() + shown[1:])[:200],
                )
            )

    # --- writes ---------------------------------------------------------------------------------

    def _write(self, batch: _Batch, report: CycleReport) -> None:
        try:
            written = store_poll_results([w for _, w in batch.reads], batch.failures)
        except DatabaseError:
            logger.exception("PLC group %s: storing a poll cycle failed", self.group)
            self._resync_statuses_safely()
        else:
            if written == len(batch.reads):
                for device, write in batch.reads:
                    device.version += 1
                    device.good_raw, device.scrap_raw = write.good_raw, write.scrap_raw
                    device.raw_at = write.read_at
            else:  # another writer (a reconfiguration) got there first: take its values
                self._resync_statuses_safely()
        if batch.states:
            self._write_states(batch.states, report)

    def _write_states(self, readings: list[StateReading], report: CycleReport) -> None:
        try:
            changed = record_machine_states(readings)
        except DatabaseError:
            logger.exception("PLC group %s: recording machine states failed", self.group)
            return  # the memory keeps the old states: the next read tries again
        changed_ids = {r.machine_id for r in changed}
        report.state_changes += len(changed)
        for reading in readings:
            device = self.devices.get(reading.machine_id)
            if device is None:
                continue
            device.state = reading.state
            if reading.machine_id in changed_ids:
                device.state_since, device.idle_check_at = reading.at, 0.0

    def _resync_statuses_safely(self) -> None:
        try:
            self._resync_statuses()
        except DatabaseError:
            logger.exception("PLC group %s: reloading counters failed", self.group)
            self._signature, self._checked_at = None, float("-inf")  # reload next cycle

    def _check_idle(self) -> None:
        now, wall = self.clock(), timezone.now()
        after = self.options.idle_downtime_after
        candidates = [
            d
            for d in self.devices.values()
            if d.idle_check_at <= now and idle_too_long(d.state, d.state_since, wall, after)
        ]
        if not candidates:
            return
        try:
            open_idle_downtimes([(d.machine_id, d.state_since) for d in candidates])
        except DatabaseError:
            logger.exception("PLC group %s: opening idle downtimes failed", self.group)
            return
        for device in candidates:
            device.idle_check_at = now + IDLE_RECHECK_SECONDS

    # --- lifecycle ----------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        for device in self.devices.values():
            device.link.close()

    def close(self) -> None:
        """Drop every connection (tests, shutdown)."""
        if self.loop.alive:
            self.loop.run(self._shutdown(), timeout=10)
        self.devices = {}
        self._signature, self._checked_at = None, float("-inf")


_frozen_in: int | None = None


def _freeze_heap_once() -> None:
    """Once per process, after the first answers: move what lives on (Django, the devices,
    their connections) out of the cyclic garbage collector's sight. A full collection then
    scans what a cycle allocates, not the whole heap, which otherwise costs a poll cycle of
    1000 devices tens of milliseconds every few cycles."""
    global _frozen_in
    if _frozen_in != os.getpid():
        _frozen_in = os.getpid()
        gc.collect()
        gc.freeze()


_pollers: dict[tuple[int, str], GroupPoller] = {}


def poller_for(group: str) -> GroupPoller:
    """This process's poller of ``group``, kept between Celery tasks."""
    key = (os.getpid(), group)
    if key not in _pollers:
        _pollers[key] = GroupPoller(group)
    return _pollers[key]
