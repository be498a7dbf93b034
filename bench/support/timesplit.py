"""Where the time goes: the wall time of a hot path split into database, Python and waiting.

Wrap each timed call in :meth:`TimeSplit.measure`; it adds up, over the calls, the wall
time, the process CPU time and, through ``connection.execute_wrapper`` (plus the commits,
which do not go through it), the wall and CPU time spent inside SQL. Per call:

- database: wall time inside SQL statements and commits (the round trip to PostgreSQL, or
  SQLite running the statement in-process), with the number of queries and commits;
- Python: process CPU time outside them (the ORM, the services, rendering, ...);
- waiting: the wall time left (waiting for the CPU, I/O outside SQL, sleeps; lock waits
  inside a statement count as database).

Only the calling thread's default connection is watched: an in-process path, not a server.
SQLite computes a SELECT's rows while they are fetched, which happens after the statement
returned: on SQLite part of the reading shows as Python. The overhead is four clock reads
per statement (microseconds). Not reentrant: one ``measure`` at a time per connection.

    split = TimeSplit()
    for _ in range(repeat):
        with split.measure():
            replan()
    print(split.line())  # 9.1 ms = db 3.0 ms 33% (4 q, 1 commit) + python ... + waiting ...
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar


@dataclass
class TimeSplit:
    HEADER: ClassVar[str] = (
        "where the time goes, mean per call = database (queries, commits) + Python + waiting"
    )

    calls: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    db_wall: float = 0.0
    db_cpu: float = 0.0
    queries: int = 0
    commits: int = 0

    @contextmanager
    def measure(self, alias: str = "default") -> Iterator[TimeSplit]:
        from django.db import connections

        connection = connections[alias]

        def clocked(call):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return call()
            finally:
                self.db_wall += time.perf_counter() - wall
                self.db_cpu += time.process_time() - cpu

        def execute(run, sql, params, many, context):
            self.queries += 1
            return clocked(lambda: run(sql, params, many, context))

        # The atomic block's COMMIT bypasses the execute wrappers: clock it on the instance.
        shadowed = connection.__dict__.get("_commit")
        commit = connection._commit

        def clocked_commit():
            self.commits += 1
            return clocked(commit)

        connection._commit = clocked_commit
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            with connection.execute_wrapper(execute):
                yield self
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu
            self.calls += 1
            if shadowed is None:
                del connection._commit
            else:
                connection._commit = shadowed

    # Per call, in milliseconds.
    def _per_call(self, seconds: float) -> float:
        return seconds * 1000 / max(1, self.calls)

    @property
    def database_ms(self) -> float:
        return self._per_call(self.db_wall)

    @property
    def python_ms(self) -> float:
        return self._per_call(max(0.0, self.cpu - self.db_cpu))

    @property
    def waiting_ms(self) -> float:
        return self._per_call(max(0.0, self.wall - self.db_wall - (self.cpu - self.db_cpu)))

    @property
    def wall_ms(self) -> float:
        return self._per_call(self.wall)

    def line(self) -> str:
        """``9.1 ms = db 3.0 ms 33% (4 q, 1 commit) + python 5.8 ms 64% + waiting 0.3 ms
        3%``: the mean wall time per call and its parts."""
        wall = self.wall_ms or float("nan")
        queries = self.queries / max(1, self.calls)
        commits = self.commits / max(1, self.calls)
        return (
            f"{self.wall_ms:.1f} ms = db {self.database_ms:.1f} ms {self.database_ms / wall:.0%} "
            f"({queries:.0f} q, {commits:.0f} commit{'' if round(commits) == 1 else 's'}) + "
            f"python {self.python_ms:.1f} ms {self.python_ms / wall:.0%} + "
            f"waiting {self.waiting_ms:.1f} ms {self.waiting_ms / wall:.0%}"
        )

    @staticmethod
    def footnote(vendor: str) -> str:
        """What to keep in mind when reading the split on this database."""
        if vendor == "sqlite":
            return (
                "(SQLite runs in the process and computes a query's rows while they are "
                "fetched: part of its reading counts as Python)"
            )
        return "(database = round trips to the server, from the statement to its rows)"
