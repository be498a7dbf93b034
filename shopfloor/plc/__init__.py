"""Machine connectivity: PLCs polled over Modbus TCP.

- ``registers`` and ``counters``: pure logic (register maps, read planning, decoding,
  counter deltas), no ORM, tested alone.
- ``modbus``: the asyncio side (pymodbus clients on a per-process event loop thread).
- ``poller``: a poll group's cycle: config, reads, change detection, database writes.
- ``services`` (writes) and ``selectors`` (reads) for connections, state events and
  counts; the REST API calls these. The stops they open and close: :mod:`shopfloor.downtime`.
- ``simulator``: simulated PLCs (pymodbus server) for the demo, tests and the benchmark.
"""

import logging

if logging.getLogger("pymodbus").level == logging.NOTSET:
    # pymodbus logs every timeout and refused connection without saying which machine it
    # was; the poller logs those itself, with the machine code. Configure the "pymodbus"
    # logger explicitly to see its own messages.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
