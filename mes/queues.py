"""The Celery queues by urgency and the routes to them (read by the settings, so free of
Django and of the Celery app)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

KINDS = ("default", "erp", "schedule", "booking", "plc")


@dataclass(frozen=True)
class Queues:
    """The queues, by urgency, so that slow work never waits in front of urgent work:

    - ``plc.<group>``: PLC polling, one queue per poll group (a cycle every beat);
    - ``<default>.erp``: ERP delivery (the outbox, every second);
    - ``<default>.schedule``: re-planning (seconds on a large plant);
    - ``<default>.booking``: booking PLC counts on operations (every few seconds);
    - ``<default>``: everything else (pruning).

    ``<default>`` is ``MES_CELERY_QUEUE`` (``celery``); the others follow it, so that runs
    sharing a broker (tests, two plants) each have their own. Poll groups are named by
    ``MES_PLC_GROUPS``: runs sharing a broker give theirs different names."""

    default: str
    plc_groups: tuple[str, ...] = ("default",)

    @property
    def schedule(self) -> str:
        return f"{self.default}.schedule"

    @property
    def erp(self) -> str:
        return f"{self.default}.erp"

    @property
    def booking(self) -> str:
        return f"{self.default}.booking"

    @staticmethod
    def plc(group: str) -> str:
        return f"plc.{group}"

    def names(self, kinds: Iterable[str] = KINDS) -> list[str]:
        """The queue names of ``kinds`` (``plc`` stands for every group's), in that order."""
        names: list[str] = []
        for kind in kinds:
            if kind not in KINDS:
                raise ValueError(f"{kind!r} is not a kind of queue ({', '.join(KINDS)}).")
            if kind == "plc":
                names.extend(self.plc(group) for group in self.plc_groups)
            else:
                names.append(getattr(self, kind))
        return names

    def routes(self) -> tuple:
        """Celery's ``task_routes``: by task name, and polling by its group argument."""
        by_name = {
            "mes.tasks.replan_schedule": {"queue": self.schedule},
            "erp_sync.tasks.deliver_outbox": {"queue": self.erp},
            "shopfloor.tasks.book_plc_counts": {"queue": self.booking},
        }
        return (by_name, route_polling)


def route_polling(name, args, kwargs, options, task=None, **kw) -> dict[str, str] | None:
    """A poll cycle goes to its group's queue, however it was sent."""
    if name == "shopfloor.tasks.poll_plc_group":
        group = args[0] if args else (kwargs or {}).get("group")
        if group:
            return {"queue": Queues.plc(group)}
    return None
