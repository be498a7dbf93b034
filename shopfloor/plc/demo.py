"""The demo plant's machines, connected to the simulated PLCs of the demo scenario."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from mes.models import Machine

from .config import ConnectionSpec
from .services import configure_connection, save_device_profile
from .simulator import DEMO_SCENARIO, load_scenario


def configure_demo_connections(
    scenario_path: Path | str = DEMO_SCENARIO,
    *,
    base_port: int | None = None,
    group: str = "default",
) -> int:
    """Give every machine the scenario names a connection to its simulated PLC
    (``manage.py simulate_plcs``), polled by ``group``. Idempotent; returns how many
    connections changed."""
    scenario = load_scenario(scenario_path, base_port=base_port)
    changed = 0
    with transaction.atomic():
        profiles = {
            code: save_device_profile(code=code, name=p.name, registers=p.registers)[0]
            for code, p in scenario.profiles.items()
        }
        machines = Machine.objects.in_bulk([m.code for m in scenario.machines], field_name="code")
        for simulated in scenario.machines:
            machine = machines.get(simulated.code)
            if machine is None:
                continue
            spec = ConnectionSpec(
                host=scenario.host,
                port=simulated.port,
                unit_id=simulated.unit_id,
                poll_interval_ms=scenario.poll_interval_ms,
                timeout_ms=scenario.timeout_ms,
                registers=None,
                profile=profiles[simulated.profile.code].code,
                group=group,
            )
            changed += configure_connection(machine, spec=spec)
    return changed
