"""Writes of machine connectivity: connection and profile configuration, what the poller
saw (counters, link health, machine states, with the downtime records they open and close
through :mod:`shopfloor.downtime`) and the booking of counted parts on operations.

Machine states go through :func:`mes.services.set_machine_state` and quantities through
:func:`mes.services.report_quantities` (one pass for many machines), always as the system
actor ``plc:<machine code>``. Lock order: the status rows, then (inside the service) the
work orders and their operations, then unassigned counts; a machine row is never held while
booking quantities.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from mes import netguard
from mes import services as mes_services
from mes.choices import MachineState, OperationStatus
from mes.errors import DomainError, ValidationFailed
from mes.models import CODE_VALIDATOR, Machine, Operation
from mes.services.bulk import update_rows
from shopfloor.choices import PLC_ACTOR_PREFIX
from shopfloor.downtime import update_downtimes
from shopfloor.models import (
    DeviceProfile,
    MachineConnection,
    MachineStateEvent,
    PlcStatus,
    PollGroupState,
    UnassignedCount,
)

from .config import ConnectionSpec, parse_connection
from .registers import SpecError, parse_register_map

logger = logging.getLogger("shopfloor.plc")


def actor_for(code: str) -> mes_services.Actor:
    return mes_services.Actor.system(f"{PLC_ACTOR_PREFIX}{code}")


def _invalid(exc: SpecError, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=exc.errors)


# --- Configuration -----------------------------------------------------------------------------


def _counter_specs(register_map: dict[str, Any] | None) -> tuple[Any, Any]:
    if not register_map:
        return None, None
    return register_map.get("good_count"), register_map.get("scrap_count")


def _rebaseline(machine_ids: Iterable[int], *, good: bool, scrap: bool) -> None:
    """Forget the raw counter values: the next read is a new baseline. Needed when what the
    counter registers mean changes (another PLC, another address or width)."""
    fields: dict[str, Any] = {"version": F("version") + 1}
    if good:
        fields["good_raw"] = None
    if scrap:
        fields["scrap_raw"] = None
    PlcStatus.objects.filter(machine_id__in=list(machine_ids)).update(**fields)


def save_device_profile(
    *, code: str, name: str, registers: dict[str, Any], notes: str = ""
) -> tuple[DeviceProfile, bool]:
    """Create or update a device profile. Returns ``(profile, changed)``. Machines using it
    pick the change up at their next poll cycle."""
    errors: dict[str, list[str]] = {}
    try:
        CODE_VALIDATOR(code)
    except ValidationError:
        errors["code"] = ["Use 1-64 letters, digits, dots, underscores or hyphens."]
    if not (name or "").strip():
        errors["name"] = ["Enter a name."]
    try:
        canonical = parse_register_map(registers, path="registers").as_json()
    except SpecError as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed("The device profile is not valid.", errors=errors)
    with transaction.atomic():
        profile = DeviceProfile.objects.select_for_update().filter(code=code).first()
        if profile is None:
            profile = DeviceProfile.objects.create(
                code=code, name=name.strip(), register_map=canonical, notes=notes
            )
            return profile, True
        if (profile.name, profile.register_map, profile.notes) == (name.strip(), canonical, notes):
            return profile, False
        old_good, old_scrap = _counter_specs(profile.register_map)
        profile.name, profile.register_map, profile.notes = name.strip(), canonical, notes
        profile.save(update_fields=["name", "register_map", "notes", "updated_at"])
        new_good, new_scrap = _counter_specs(canonical)
        if (old_good, old_scrap) != (new_good, new_scrap):
            machine_ids = profile.connections.values_list("machine_id", flat=True)
            _rebaseline(machine_ids, good=old_good != new_good, scrap=old_scrap != new_scrap)
        return profile, True


def _resolve_registers(
    spec: ConnectionSpec, current: MachineConnection | None
) -> tuple[DeviceProfile | None, dict[str, Any]]:
    """The profile (or None) and the effective register map the connection gets."""
    if spec.profile is None:
        kept = current.profile if current is not None and current.profile_id else None
        if spec.registers is None:  # both left out (a partial spec): keep what there is
            if current is None:
                raise ValidationFailed.field(
                    "connection.registers", "Give the register map (or a device profile)."
                )
            return kept, current.effective_register_map() or {}
        if (
            kept is not None
            and not spec.profile_given
            and spec.registers.as_json() == kept.register_map
        ):
            return kept, kept.register_map  # the profile's own map, sent back: stay on it
        return None, spec.registers.as_json()
    profile = DeviceProfile.objects.filter(code=spec.profile).first()
    if profile is None:
        raise ValidationFailed.field(
            "connection.profile", f"Unknown device profile {spec.profile!r}."
        )
    if spec.registers is not None and spec.registers.as_json() != profile.register_map:
        raise ValidationFailed.field(
            "connection.registers",
            f"Differs from the register map of profile {profile.code}; leave registers out "
            "or drop the profile.",
        )
    return profile, profile.register_map


def plc_host_problem(host: str) -> str | None:
    """Why the poller will not connect to ``host``, or None. PLCs live on private networks,
    so private addresses are fine; loopback, link-local (169.254.169.254, cloud metadata),
    unspecified, multicast and reserved ones are not, unless ``MES_OUTBOUND_ALLOWED_HOSTS``
    names them (the demo's simulated PLCs are on 127.0.0.1). Host names are checked again,
    on what they resolve to, at every connection."""
    allow = netguard.allow_list(tuple(settings.MES_OUTBOUND_ALLOWED_HOSTS))
    try:
        netguard.check_host(host, refused=netguard.PLC, allow=allow)
    except netguard.TargetNotAllowed as exc:
        return exc.sentence()
    return None


def configure_connection(machine: Machine, *, spec: ConnectionSpec) -> bool:
    """Create or change a machine's PLC connection. Returns False when nothing changed.
    Raw counter values are forgotten when the counters now mean something else.

    ``spec.enabled`` and ``spec.group``: None gives a new connection the default (enabled,
    group ``default``) and leaves an existing one's as it is; so does a left-out profile or
    register map (see :class:`ConnectionSpec`)."""
    if problem := plc_host_problem(spec.host):
        raise ValidationFailed.field("connection.host", problem)
    enabled = spec.enabled
    with transaction.atomic():
        Machine.objects.select_for_update().filter(pk=machine.pk).first()
        current = (
            MachineConnection.objects.select_for_update(of=("self",))
            .select_related("profile")
            .filter(machine=machine)
            .first()
        )
        profile, register_map = _resolve_registers(spec, current)
        values: dict[str, Any] = {
            "host": spec.host,
            "port": spec.port,
            "unit_id": spec.unit_id,
            "poll_interval_ms": spec.poll_interval_ms,
            "timeout_ms": spec.timeout_ms,
            "profile": profile,
            "register_map": None if profile else register_map,
        }
        if current is None:
            values["group"] = spec.group or "default"
            values["enabled"] = True if enabled is None else enabled
        else:
            if spec.group is not None:
                values["group"] = spec.group
            if enabled is not None:
                values["enabled"] = enabled
        PlcStatus.objects.get_or_create(machine=machine)
        if current is None:
            MachineConnection.objects.create(machine=machine, **values)
            _rebaseline([machine.pk], good=True, scrap=True)
            return True
        if all(getattr(current, key) == value for key, value in values.items()):
            return False
        old_endpoint = (current.host, current.port, current.unit_id)
        old_good, old_scrap = _counter_specs(current.effective_register_map())
        new_good, new_scrap = _counter_specs(register_map)
        for key, value in values.items():
            setattr(current, key, value)
        current.save(update_fields=[*values, "updated_at"])
        moved = old_endpoint != (spec.host, spec.port, spec.unit_id)
        if moved or (old_good, old_scrap) != (new_good, new_scrap):
            good, scrap = moved or old_good != new_good, moved or old_scrap != new_scrap
            _rebaseline([machine.pk], good=good, scrap=scrap)
        return True


def remove_connection(machine: Machine, *, at: datetime | None = None) -> bool:
    """Stop polling a machine. Its state becomes unknown; counts not yet booked still are."""
    at = at or timezone.now()
    with transaction.atomic():
        Machine.objects.select_for_update().filter(pk=machine.pk).first()
        deleted, _ = MachineConnection.objects.filter(machine=machine).delete()
        if not deleted:
            return False
        record_machine_states(
            [
                StateReading(
                    machine.pk, machine.code, MachineState.UNKNOWN, at, "PLC connection removed"
                )
            ]
        )
        return True


def set_machine_connection(machine: Machine, *, connection: dict[str, Any] | None) -> bool:
    """Apply the ``connection`` object of ``PUT /api/v1/machines/{code}/`` as JSON-decoded,
    or remove the connection when it is None. Returns True when something changed, False
    when the connection was already exactly so (an idempotent PUT). What the object leaves
    out of ``registers``, ``profile``, ``group`` and ``enabled`` stays as it is.

    Everything is validated first; on bad input :class:`~mes.errors.ValidationFailed` names
    each field (``connection.registers.state.table``) and nothing changes. The poller picks
    a change up at its next cycle, without a restart."""
    if connection is None:
        return remove_connection(machine)
    groups = list(settings.MES_PLC_GROUPS)
    current_group = (
        MachineConnection.objects.filter(machine=machine).values_list("group", flat=True).first()
    )
    if current_group and current_group not in groups:
        groups.append(current_group)  # sent back unchanged: not a move to an unknown group
    try:
        spec = parse_connection(connection, groups=tuple(groups), partial=True)
    except SpecError as exc:
        raise _invalid(exc, "The PLC connection is not valid.") from None
    return configure_connection(machine, spec=spec)


# --- What the poller saw --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateReading:
    """A machine's state as read (or concluded, for offline) at ``at``."""

    machine_id: int
    code: str
    state: str
    at: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReadWrite:
    """A good read: raw counters now, the parts they add, over the status ``version`` the
    poller computed them from."""

    machine_id: int
    version: int
    good_raw: int | None
    scrap_raw: int | None
    good_delta: int
    scrap_delta: int
    read_at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class FailureWrite:
    machine_id: int
    failures: int
    error: str
    at: datetime


def _status_sql(assignments: str, where: str) -> str:
    quote = connection.ops.quote_name
    return f"UPDATE {quote(PlcStatus._meta.db_table)} SET {assignments} WHERE {where}"


def _millisecond_adapter() -> Callable[[datetime], Any]:
    convert = connection.ops.adapt_datetimefield_value
    cache: dict[int, Any] = {}

    def adapt(at: datetime) -> Any:
        key = int(at.timestamp() * 1000)
        value = cache.get(key)
        if value is None:
            value = cache[key] = convert(datetime.fromtimestamp(key / 1000, tz=UTC))
        return value

    return adapt


def store_poll_results(reads: Sequence[ReadWrite], failures: Sequence[FailureWrite]) -> int:
    """Write a cycle's reads and failures in one transaction. A read is written only over
    the status version it was computed from (compare and set); returns how many reads were
    written, so the poller reloads when another writer got there first.

    Not ``bulk_update``: its CASE expression grows with the number of rows, and a poll cycle
    writes thousands. Read times are kept to the millisecond (converting each for the
    database would cost more than the update)."""
    adapt = _millisecond_adapter()
    rows = [
        (
            r.machine_id,
            r.version,
            r.good_raw,
            r.scrap_raw,
            r.good_delta,
            r.scrap_delta,
            adapt(r.read_at),
            r.note,
        )
        for r in reads
    ]
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        if rows and connection.vendor == "postgresql":
            written = _store_reads_in_one_statement(cursor, rows)
        elif rows:
            # In-process SQLite runs one statement per read about as fast as one for all.
            cursor.executemany(
                _status_sql(
                    "version = version + 1, good_raw = %s, scrap_raw = %s, "
                    "pending_good = pending_good + %s, pending_scrap = pending_scrap + %s, "
                    "last_read_at = %s, last_error = %s, consecutive_failures = 0",
                    "machine_id = %s AND version = %s",
                ),
                [(*row[2:], row[0], row[1]) for row in rows],
            )
            written = cursor.rowcount
        if failures:
            cursor.executemany(
                _status_sql(
                    "consecutive_failures = %s, error_count = error_count + 1, "
                    "last_error = %s, last_error_at = %s",
                    "machine_id = %s",
                ),
                [(f.failures, f.error, adapt(f.at), f.machine_id) for f in failures],
            )
    return written


def _store_reads_in_one_statement(cursor: Any, rows: list[tuple[Any, ...]]) -> int:
    """PostgreSQL: one UPDATE over arrays of every column instead of a round trip per read."""
    table = connection.ops.quote_name(PlcStatus._meta.db_table)
    columns = [list(column) for column in zip(*rows, strict=True)]
    cursor.execute(
        f"UPDATE {table} AS s SET version = s.version + 1, good_raw = v.good_raw, "
        "scrap_raw = v.scrap_raw, pending_good = s.pending_good + v.good_delta, "
        "pending_scrap = s.pending_scrap + v.scrap_delta, last_read_at = v.read_at, "
        "last_error = v.note, consecutive_failures = 0 "
        "FROM unnest(%s::bigint[], %s::integer[], %s::bigint[], %s::bigint[], %s::bigint[], "
        "%s::bigint[], %s::timestamptz[], %s::text[]) AS v(machine_id, version, good_raw, "
        "scrap_raw, good_delta, scrap_delta, read_at, note) "
        "WHERE s.machine_id = v.machine_id AND s.version = v.version",
        columns,
    )
    return cursor.rowcount


def record_machine_states(readings: Sequence[StateReading]) -> list[StateReading]:
    """Apply state readings through ``set_machine_state``; for those that changed a machine's
    state, append a state event from the reading's time and open or close downtime records.
    Returns the readings that changed something."""
    if not readings:
        return []
    changed: list[StateReading] = []
    with transaction.atomic():
        for reading in sorted(readings, key=lambda r: r.machine_id):
            machine = Machine(pk=reading.machine_id, code=reading.code)
            try:
                if mes_services.set_machine_state(
                    machine,
                    state=reading.state,
                    actor=actor_for(reading.code),
                    at=reading.at,
                    reason=reading.reason,
                ):
                    changed.append(reading)
            except (DomainError, Machine.DoesNotExist) as exc:
                logger.warning("PLC %s: %s not recorded: %s", reading.code, reading.state, exc)
        if changed:
            _write_state_events(changed)
            update_downtimes(changed)
    return changed


def _write_state_events(changed: Sequence[StateReading]) -> None:
    MachineStateEvent.objects.bulk_create(
        MachineStateEvent(
            machine_id=r.machine_id,
            state=r.state,
            started_at=r.at,
            source=actor_for(r.code).name,
            reason=r.reason[:200],
        )
        for r in changed
    )


# --- Booking counted parts on operations ---------------------------------------------------


@dataclass
class BookingSummary:
    booked: int = 0  # machines whose counts went to an operation
    unassigned: int = 0  # machines whose counts went to an unassigned count
    good: int = 0
    scrap: int = 0

    def add(self, booked: bool, good: int, scrap: int) -> None:
        if booked:
            self.booked += 1
        else:
            self.unassigned += 1
        self.good += good
        self.scrap += scrap


def _add_unassigned(machine: Machine, good: int, scrap: int, note: str, at: datetime) -> None:
    _add_unassigned_many([(machine.pk, good, scrap, note)], at)


def _add_unassigned_many(counts: Sequence[tuple[int, int, int, str]], at: datetime) -> None:
    """Add (machine id, good, scrap, why) to each machine's open unassigned count, opening one
    where there is none."""
    if not counts:
        return
    open_rows = {
        row.machine_id: row
        for row in UnassignedCount.objects.select_for_update()
        .filter(machine_id__in=[c[0] for c in counts], closed_at__isnull=True)
        .order_by("machine_id")
    }
    existing = list(open_rows.values())
    new = []
    for machine_id, good, scrap, note in counts:
        row = open_rows.get(machine_id)
        if row is None:
            row = open_rows[machine_id] = UnassignedCount(
                machine_id=machine_id, good=0, scrap=0, first_at=at, last_at=at
            )
            new.append(row)
        row.good, row.scrap, row.last_at = row.good + good, row.scrap + scrap, at
        row.note = note[:300]
    UnassignedCount.objects.bulk_create(new)
    update_rows(UnassignedCount, existing, ["good", "scrap", "last_at", "note"])


def _book_machine(machine_id: int, at: datetime, summary: BookingSummary) -> None:
    """The reference booking of one machine (one ``report_quantity``): what a pass of
    :func:`_book_chunk` must write for each of its machines."""
    with transaction.atomic():
        status = (
            PlcStatus.objects.select_for_update(of=("self",))
            .select_related("machine")
            .get(pk=machine_id)
        )
        good, scrap = max(status.pending_good, 0), max(status.pending_scrap, 0)
        if not good and not scrap:
            return
        machine = status.machine
        operation = _running_operations([machine.pk]).get(machine.pk)
        note = NOTHING_RUNNING
        booked = False
        if operation is not None:
            try:
                mes_services.report_quantity(
                    operation, actor=actor_for(machine.code), good=good, scrap=scrap, at=at
                )
                booked = True
            except DomainError as exc:
                note = f"{operation.label}: {exc.message}"
        summary.add(booked, good, scrap)
        if not booked:
            _log_unassigned(machine.code, good, scrap, note)
            _add_unassigned(machine, good, scrap, note, at)
        PlcStatus.objects.filter(pk=machine_id).update(
            pending_good=F("pending_good") - good, pending_scrap=F("pending_scrap") - scrap
        )


NOTHING_RUNNING = "No operation was running on the machine."


def _running_operations(machine_ids: list[int]) -> dict[int, Operation]:
    """The operation running on each machine (the first by order and sequence, should there
    be more than one)."""
    running: dict[int, Operation] = {}
    for op in (
        Operation.objects.filter(machine_id__in=machine_ids, status=OperationStatus.RUNNING)
        .select_related("work_order")
        .only("machine_id", "sequence", "work_order__number")
        .order_by("work_order", "sequence")
    ):
        running.setdefault(op.machine_id, op)
    return running


def _log_unassigned(code: str, good: int, scrap: int, note: str) -> None:
    logger.info("PLC %s: %s good, %s scrap unassigned: %s", code, good, scrap, note)


def _book_chunk(machine_ids: list[int], at: datetime, summary: BookingSummary) -> None:
    """Book the pending counts of some machines in one transaction with a few set-based
    statements: the status rows are locked (in machine order), each machine's counts go to
    its running operation through :func:`mes.services.report_quantities` or to its
    unassigned count, and the pending counts come down by what was booked. A worker that
    dies in the middle commits nothing of the chunk: its counts stay pending."""
    with transaction.atomic():
        statuses = [
            (status, max(status.pending_good, 0), max(status.pending_scrap, 0))
            for status in PlcStatus.objects.select_for_update(of=("self",))
            .select_related("machine")
            .filter(machine_id__in=machine_ids)
            .order_by("machine_id")
        ]
        statuses = [(status, good, scrap) for status, good, scrap in statuses if good or scrap]
        if not statuses:
            return
        running = _running_operations([status.machine_id for status, _, _ in statuses])
        on_operations = [t for t in statuses if t[0].machine_id in running]
        results = mes_services.report_quantities(
            [
                mes_services.QuantityReport(
                    running[status.machine_id].pk,
                    actor_for(status.machine.code),
                    good=good,
                    scrap=scrap,
                )
                for status, good, scrap in on_operations
            ],
            at=at,
        )
        notes = {status.machine_id: NOTHING_RUNNING for status, _, _ in statuses}
        for (status, _, _), result in zip(on_operations, results, strict=True):
            if isinstance(result, DomainError):
                notes[status.machine_id] = f"{running[status.machine_id].label}: {result.message}"
            else:
                del notes[status.machine_id]
        unassigned = []
        for status, good, scrap in statuses:
            booked = status.machine_id not in notes
            summary.add(booked, good, scrap)
            if not booked:
                _log_unassigned(status.machine.code, good, scrap, notes[status.machine_id])
                unassigned.append((status.machine_id, good, scrap, notes[status.machine_id]))
            status.pending_good -= good
            status.pending_scrap -= scrap
        _add_unassigned_many(unassigned, at)
        update_rows(PlcStatus, [status for status, _, _ in statuses], PENDING)


PENDING = ["pending_good", "pending_scrap"]
BOOKING_CHUNK = 500  # machines per transaction


def book_pending_counts(
    *,
    machine_ids: Iterable[int] | None = None,
    at: datetime | None = None,
    bulk: bool = True,
    chunk: int = BOOKING_CHUNK,
) -> BookingSummary:
    """Book the parts the PLCs counted since the last booking on each machine's running
    operation: one audit record, confirmation and ``work_order.updated`` per machine and
    pass (not per part), written for ``chunk`` machines at a time in set-based statements
    (``bulk`` off: one ``report_quantity`` per machine, the reference the bulk path is
    tested against). Counts no operation takes are kept as an unassigned count."""
    at = at or timezone.now()
    pending = PlcStatus.objects.filter(Q(pending_good__gt=0) | Q(pending_scrap__gt=0))
    if machine_ids is not None:
        pending = pending.filter(machine_id__in=list(machine_ids))
    summary = BookingSummary()
    ids = list(pending.order_by("machine_id").values_list("machine_id", flat=True))
    groups = [ids[i : i + chunk] for i in range(0, len(ids), chunk)] if bulk else ids
    for group in groups:
        try:
            if bulk:
                _book_chunk(group, at, summary)
            else:
                _book_machine(group, at, summary)
        except Exception:
            # One failure (a lock timeout, say) must not stop the others; its counts stay
            # pending for the next booking.
            logger.exception("Booking the PLC counts of machines %s failed", group)
    return summary


def close_unassigned_count(row: UnassignedCount, *, at: datetime | None = None) -> bool:
    """Acknowledge an unassigned count (a supervisor has dealt with it)."""
    with transaction.atomic():
        locked = UnassignedCount.objects.select_for_update().get(pk=row.pk)
        if locked.closed_at is not None:
            return False
        locked.closed_at = at or timezone.now()
        locked.save(update_fields=["closed_at"])
        return True


def record_poll_beat(group: str, *, cycles: int, reads_failed: int, seconds: float) -> None:
    """Add one beat's cycles to its poll group's totals (telemetry for the metrics: no audit
    record, one UPDATE, or an INSERT the first time)."""
    now = timezone.now()
    updated = PollGroupState.objects.filter(group=group).update(
        cycles=F("cycles") + cycles,
        reads_failed=F("reads_failed") + reads_failed,
        last_cycle_seconds=seconds,
        last_beat_at=now,
    )
    if not updated:
        PollGroupState.objects.get_or_create(
            group=group,
            defaults={
                "cycles": cycles,
                "reads_failed": reads_failed,
                "last_cycle_seconds": seconds,
                "last_beat_at": now,
            },
        )
