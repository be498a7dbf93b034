"""Prometheus metrics at ``/metrics`` (prometheus-client).

Two kinds:

- measured in the web processes: request latency by route, method and status class, and
  terminal actions (their rate is the terminal actions per minute). Under gunicorn with
  several workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder writable by all of
  them (the image and the compose file do) and every worker's values are summed;
- read from the database when scraped, so that they hold whatever process did the work (a
  Celery worker, another host): the ERP outbox's backlog and the age of its oldest event,
  each poll group's last cycle time, cycles, failed reads and failing machines, the leases
  taken over from a dead or stalled holder, and the last re-plan's duration and age.

Access: with ``MES_METRICS_TOKEN`` set, a scraper sends ``Authorization: Bearer <token>``;
without it only loopback clients are answered (a Prometheus beside the web process), and
never a request that came through a proxy (``X-Forwarded-*``).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)
LOCAL = CollectorRegistry(auto_describe=True)

REQUEST_SECONDS = Histogram(
    "mes_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (URL name), method and status class.",
    ["route", "method", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0),
    registry=LOCAL,
)
TERMINAL_ACTIONS = Counter(
    "mes_terminal_actions",
    "Actions operators sent from shop-floor terminals (form posts), by screen.",
    ["screen"],
    registry=LOCAL,
)
FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestMetricsMiddleware:
    """Outermost middleware: times every request, labelled by the route it resolved to."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.view_name or "unnamed") if match is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"
        REQUEST_SECONDS.labels(route, method, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        return response


class PlantCollector:
    """What the plant's workers did, read from the database at scrape time. A database that
    does not answer (or is not migrated) leaves these out and says so in ``mes_database_up``
    rather than failing the scrape: the process metrics still arrive."""

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = list(self._from_database())
        except Exception:
            logger.exception("metrics: the database could not be read")
            metrics = []
        yield GaugeMetricFamily(
            "mes_database_up",
            "1 when the plant's figures below could be read from the database.",
            value=1 if metrics else 0,
        )
        yield from metrics

    def _from_database(self) -> Iterator[Metric]:
        from erp_sync.delivery import delivery_lag
        from mes.models import Lease, ScheduleState
        from shopfloor.models import MachineConnection, PollGroupState

        now = timezone.now()
        lag = delivery_lag()
        yield GaugeMetricFamily(
            "mes_outbox_pending", "ERP deliveries waiting to be sent.", value=lag["pending"]
        )
        yield GaugeMetricFamily(
            "mes_outbox_dead", "ERP deliveries given up on (dead letters).", value=lag["dead"]
        )
        yield GaugeMetricFamily(
            "mes_outbox_oldest_pending_age_seconds",
            "Age of the oldest ERP delivery still waiting (0 when none waits).",
            value=lag["oldest_age_seconds"],
        )

        cycle = GaugeMetricFamily(
            "mes_plc_poll_cycle_seconds",
            "Duration of the last poll cycle, per poll group.",
            labels=["group"],
        )
        beat_age = GaugeMetricFamily(
            "mes_plc_poll_last_beat_age_seconds",
            "Seconds since the poll group's last beat ran (a stuck poller shows here).",
            labels=["group"],
        )
        cycles = CounterMetricFamily(
            "mes_plc_poll_cycles", "Poll cycles run, per poll group.", labels=["group"]
        )
        failed = CounterMetricFamily(
            "mes_plc_poll_reads_failed",
            "PLC reads that failed (no answer, refused, malformed), per poll group.",
            labels=["group"],
        )
        states = {s.group: s for s in PollGroupState.objects.all()}
        for group in sorted(set(settings.MES_PLC_GROUPS) | set(states)):
            state = states.get(group)
            if state is None:
                continue
            cycle.add_metric([group], state.last_cycle_seconds)
            cycles.add_metric([group], state.cycles)
            failed.add_metric([group], state.reads_failed)
            if state.last_beat_at is not None:
                beat_age.add_metric([group], (now - state.last_beat_at).total_seconds())
        yield from (cycle, beat_age, cycles, failed)

        takeovers = CounterMetricFamily(
            "mes_lease_takeovers",
            "Leases taken over from a holder whose lease ran out (a poll worker or a beat that "
            "died or stalled), per lease (plc:<group>, beat:<queue>).",
            labels=["lease"],
        )
        for name, count in Lease.objects.values_list("name", "takeovers"):
            takeovers.add_metric([name], count)
        yield takeovers

        machines = GaugeMetricFamily(
            "mes_plc_machines",
            "Machines with an enabled PLC connection, and those whose last read failed.",
            labels=["group", "link"],
        )
        rows = (
            MachineConnection.objects.filter(enabled=True)
            .values("group")
            .annotate(
                total=Count("pk"),
                failing=Count("pk", filter=Q(machine__plc_status__consecutive_failures__gt=0)),
            )
        )
        for row in rows:
            machines.add_metric([row["group"], "all"], row["total"])
            machines.add_metric([row["group"], "failing"], row["failing"])
        yield machines

        state = ScheduleState.objects.filter(pk=1).first()
        if state is not None and state.last_replan_seconds is not None:
            yield GaugeMetricFamily(
                "mes_schedule_replan_seconds",
                "Duration of the last re-plan of the live schedule.",
                value=state.last_replan_seconds,
            )
        if state is not None and state.planned_at is not None:
            yield GaugeMetricFamily(
                "mes_schedule_age_seconds",
                "Seconds since the live schedule was last planned.",
                value=(now - state.planned_at).total_seconds(),
            )


class _Local:
    def collect(self) -> Iterator[Metric]:
        yield from LOCAL.collect()


def render() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Local())
    registry.register(PlantCollector())
    return generate_latest(registry)


def _allowed(request: HttpRequest) -> bool:
    token = settings.MES_METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    if any(h in request.META for h in FORWARDED):
        return False  # a proxy on this host: loopback says nothing about the client
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        from erp_sync.api.exceptions import error_body

        return JsonResponse(
            error_body(
                "permission_denied", "Metrics need the metrics token (or a loopback client)."
            ),
            status=403,
        )
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
