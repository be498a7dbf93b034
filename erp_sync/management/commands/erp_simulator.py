"""Run the ERP simulator (see erp_sync.simulator)."""

import logging
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from erp_sync.simulator import FAIL_MODES, ErpState, serve

DEMO_SECRET = "demo-erp-shared-secret"


class Command(BaseCommand):
    help = "Receive the MES's webhooks like an ERP would: verify, deduplicate, log, and fail "
    "on request."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8089)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--secret", default=DEMO_SECRET)
        parser.add_argument(
            "--state-file",
            type=Path,
            default=Path(settings.VAR_DIR) / "erp_simulator.jsonl",
            help="Applied idempotency keys, kept across restarts.",
        )
        parser.add_argument(
            "--fail-rate", type=float, default=0.0, help="Share of requests that fail (0-1)."
        )
        parser.add_argument("--fail-mode", choices=FAIL_MODES, default="500")
        parser.add_argument("--slow-seconds", type=float, default=10.0)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, **opts) -> None:
        if opts["host"] not in ("127.0.0.1", "localhost", "::1"):
            raise CommandError("The simulator listens on loopback only.")
        if not 0 <= opts["fail_rate"] <= 1:
            raise CommandError("--fail-rate is a share between 0 and 1.")
        logging.getLogger("erp_simulator").setLevel(logging.INFO)
        state = ErpState(
            secret=opts["secret"],
            state_file=opts["state_file"],
            fail_rate=opts["fail_rate"],
            fail_mode=opts["fail_mode"],
            slow_seconds=opts["slow_seconds"],
            seed=opts["seed"],
        )
        server = serve(state, opts["host"], opts["port"])
        self.stdout.write(
            f"ERP simulator on http://{opts['host']}:{server.server_address[1]}/ "
            f"(fail {opts['fail_rate']:.0%} as {opts['fail_mode']}); "
            f"{len(state.applied)} events applied so far.",
        )
        self.stdout.flush()
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
