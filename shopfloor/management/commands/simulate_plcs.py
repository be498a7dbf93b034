"""Serve simulated PLCs over Modbus TCP (pymodbus server) for the demo and for trying the
poller without hardware."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from shopfloor.plc.registers import SpecError
from shopfloor.plc.simulator import DEMO_SCENARIO, load_scenario, serve_scenario, stop_all


class Command(BaseCommand):
    help = (
        "Serve N simulated machines over Modbus TCP on 127.0.0.1, driven by a scenario file "
        "(cycle times with jitter, micro-stops, breakdowns, setups, scrap rate)."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--scenario", default=str(DEMO_SCENARIO), help="TOML scenario file.")
        parser.add_argument(
            "--machines",
            type=int,
            default=None,
            help="How many machines to serve (the scenario's are repeated); default: as many "
            "as the scenario lists.",
        )
        parser.add_argument("--host", default=None, help="Listen address (default: scenario's).")
        parser.add_argument(
            "--base-port", type=int, default=None, help="First port (default: scenario's)."
        )
        parser.add_argument(
            "--speed", type=float, default=1.0, help="Run the machines' clocks faster (e.g. 10)."
        )
        parser.add_argument(
            "--seconds", type=float, default=None, help="Stop after this long (default: never)."
        )

    def handle(self, *args, **options) -> None:
        try:
            scenario = load_scenario(
                Path(options["scenario"]),
                machines=options["machines"],
                base_port=options["base_port"],
            )
        except (OSError, ValueError, KeyError, SpecError) as exc:
            raise CommandError(f"Scenario {options['scenario']}: {exc}") from None
        if options["speed"] <= 0:
            raise CommandError("--speed must be positive.")
        _allow_sockets(len(scenario.machines) * 4 + 64)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._serve(scenario, options))

    async def _serve(self, scenario, options) -> None:
        try:
            servers, models = await serve_scenario(
                scenario, speed=options["speed"], host=options["host"]
            )
        except (OSError, RuntimeError) as exc:
            raise CommandError(f"Cannot listen: {exc}") from None
        host = options["host"] or scenario.host
        for machine in scenario.machines:
            self.stdout.write(
                f"  {machine.code:<14} {host}:{machine.port}  profile {machine.profile.code}"
            )
        self.stdout.write(f"Serving {len(servers)} simulated PLCs. Ctrl-C stops.")
        self.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks = [asyncio.create_task(model.run()) for model in models]
        try:
            await asyncio.wait_for(stop.wait(), timeout=options["seconds"])
        except TimeoutError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await stop_all(servers)


def _allow_sockets(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
