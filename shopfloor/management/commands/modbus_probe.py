"""Ask a PLC for registers and print what it answers (commissioning). Reads only."""

from __future__ import annotations

import asyncio
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mes.formats import parse_int
from shopfloor.plc.modbus import DeviceLink, Endpoint, ReadFailure
from shopfloor.plc.registers import (
    MAX_ADDRESS,
    MAX_READ_COUNT,
    TABLES,
    ReadSpan,
    decode_counter,
)


def parse_target(value: str) -> tuple[str, int]:
    host, sep, raw_port = value.rpartition(":")
    port = parse_int(raw_port)
    if not sep or not host or port is None or not 0 < port < 65536:
        raise CommandError(f"{value!r}: give HOST:PORT, e.g. 127.0.0.1:502.")
    return host.strip("[]"), port


def parse_read(value: str) -> ReadSpan:
    parts = value.split(":")
    address, count = (parse_int(p) for p in parts[1:]) if len(parts) == 3 else (None, None)
    if parts[0] not in TABLES or address is None or count is None:
        raise CommandError(f"--read {value!r}: give TABLE:ADDRESS:COUNT, e.g. holding:0:10.")
    if not 1 <= count <= MAX_READ_COUNT or address + count - 1 > MAX_ADDRESS:
        raise CommandError(f"--read {value!r}: 1 to {MAX_READ_COUNT} registers within 0-65535.")
    return ReadSpan(parts[0], address, count)


def format_span(span: ReadSpan, values: list[int]) -> list[str]:
    lines = [f"{span.table} registers {span.address}-{span.address + span.count - 1}:"]
    lines.append(
        f"  {'address':>7} {'value':>6} {'hex':>6} {'signed':>7} {'u32 big':>11} {'u32 little':>11}"
    )
    for offset, value in enumerate(values):
        pair = values[offset : offset + 2]
        big = decode_counter(pair, "big") if len(pair) == 2 else ""
        little = decode_counter(pair, "little") if len(pair) == 2 else ""
        signed = value - 0x10000 if value & 0x8000 else value
        lines.append(
            f"  {span.address + offset:>7} {value:>6} {value:#06x} {signed:>7} {big!s:>11} "
            f"{little!s:>11}"
        )
    return lines


class Command(BaseCommand):
    help = (
        "Read registers from a Modbus TCP device and print them, with 32-bit combinations in "
        "both word orders. Example: modbus_probe 127.0.0.1:15020 --unit 1 --read holding:0:10"
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", help="HOST:PORT")
        parser.add_argument("--unit", type=int, default=1, help="Unit (slave) id, default 1.")
        parser.add_argument(
            "--read",
            action="append",
            default=[],
            metavar="TABLE:ADDRESS:COUNT",
            help="holding or input registers; may be given several times.",
        )
        parser.add_argument("--timeout", type=float, default=2.0, help="Seconds, default 2.")

    def handle(self, *args, **options) -> None:
        host, port = parse_target(options["target"])
        if not 0 <= options["unit"] <= 255:
            raise CommandError("--unit must be 0-255.")
        spans = [parse_read(value) for value in options["read"] or ["holding:0:10"]]
        endpoint = Endpoint(host, port, options["unit"], options["timeout"] * len(spans))
        started = time.monotonic()
        try:
            answers = asyncio.run(self._read(endpoint, spans))
        except ReadFailure as failure:
            raise CommandError(f"{endpoint}: {failure.kind}: {failure.message}") from None
        elapsed = (time.monotonic() - started) * 1000
        self.stdout.write(f"{endpoint} answered in {elapsed:.0f} ms")
        for span, values in zip(spans, answers, strict=True):
            self.stdout.write("\n".join(format_span(span, values)))

    async def _read(self, endpoint: Endpoint, spans: list[ReadSpan]) -> list[list[int]]:
        link = DeviceLink(endpoint, name="probe")
        try:
            return await link.read(spans)
        finally:
            link.close()
