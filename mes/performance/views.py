"""Supervisors' screens: the plant board, OEE with its losses, the downtime Pareto and the
stops waiting for a reason, a machine's state timeline, and the Gantt of the live schedule.
Views authorise, call selectors (or a service for a reason given), and render."""

from __future__ import annotations

import csv
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from mes.accounts import has_role
from mes.calendars.selectors import calendar_of_site
from mes.choices import MachineState, OperationStatus, Role, WorkOrderStatus
from mes.errors import DomainError
from mes.formats import parse_int, row_id
from mes.models import Area, Machine, Operation, ScheduleState, Site, WorkCenter, WorkOrder

from . import board, charts
from .selectors import LEVELS, daily_totals, downtime_pareto, figures, figures_total


def _board_context(request: HttpRequest) -> dict:
    now = timezone.now()
    area = request.GET.get("area", "")[:64] or None
    plant = board.board(area=area, now=now)
    tiles = plant.tiles
    sites = {t.machine.work_center.area.site for t in tiles}
    summaries = []
    for site in sorted(sites, key=lambda s: s.code):
        window, kpis = plant.summary(site)
        summaries.append({"site": site, "window": window, "kpis": kpis})
    counts: dict[str, int] = {}
    for tile in tiles:
        state = "blocked" if tile.blocked else tile.machine.state
        counts[state] = counts.get(state, 0) + 1
    n = len(tiles)
    return {
        "tiles": tiles,
        "cols": 6 if n > 20 else 5 if n > 12 else 4 if n > 6 else 3,
        "summaries": summaries,
        "counts": counts,
        "now": now,
        "area": area,
        "areas": Area.objects.order_by("code"),
        "waiting": sum(1 for t in tiles if t.needs_reason),
    }


@login_required
def plant_board(request: HttpRequest) -> HttpResponse:
    """The plant overview for a TV across the hall (ISA-101 level 1): every machine's
    state, what runs and the shift's OEE; refreshed every 2 s without moving the layout."""
    template = "performance/board.html"
    if request.headers.get("HX-Request") == "true":
        template = "performance/partials/board_tiles.html"
    return render(request, template, _board_context(request))


# --- Supervisor pages -------------------------------------------------------------------------

SUPERVISOR_ROLES = (Role.SUPERVISOR, Role.PLANNER, Role.ADMIN)
PRESETS = [
    ("shift", gettext_lazy("This shift")),
    ("today", gettext_lazy("Today")),
    ("yesterday", gettext_lazy("Yesterday")),
    ("week", gettext_lazy("This week")),
    ("7d", gettext_lazy("Last 7 days")),
    ("30d", gettext_lazy("Last 30 days")),
]
LEVEL_NAMES = {
    "site": gettext_lazy("Site"),
    "area": gettext_lazy("Area"),
    "work_center": gettext_lazy("Work center"),
    "machine": gettext_lazy("Machine"),
}
CHILD = {"site": "area", "area": "work_center", "work_center": "machine"}
LOSS_NAMES = {
    "breakdowns": gettext_lazy("Breakdowns and unplanned stops"),
    "setup": gettext_lazy("Setup and adjustment"),
    "small_stops": gettext_lazy("Small stops"),
    "reduced_speed": gettext_lazy("Reduced speed"),
    "startup_rejects": gettext_lazy("Startup rejects"),
    "production_rejects": gettext_lazy("Production rejects"),
    "no_data": gettext_lazy("No data (offline)"),
}


def supervisor_view(view):
    """Signed in, and a supervisor, planner or admin; others are told so (403)."""

    @wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not has_role(request.user, *SUPERVISOR_ROLES):
            return HttpResponseForbidden(_("These pages are for supervisors and planners."))
        return view(request, *args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Filters:
    level: str
    within: dict[str, str]
    preset: str
    start: datetime
    end: datetime
    zone: tzinfo
    error: str = ""

    def query(self, **changes) -> str:
        values = {"level": self.level, "range": self.preset, **self.within, **changes}
        if self.preset == "custom":
            values.setdefault("start", f"{self.start.astimezone(self.zone):%Y-%m-%d}")
            values.setdefault(
                "end", f"{(self.end - timedelta(days=1)).astimezone(self.zone):%Y-%m-%d}"
            )
        return urlencode({k: v for k, v in values.items() if v})


def _plant_zone() -> tzinfo:
    site = Site.objects.order_by("code").first()
    try:
        return zoneinfo.ZoneInfo(site.time_zone) if site else timezone.get_current_timezone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_current_timezone()


def _day(raw: str, zone: tzinfo) -> datetime | None:
    try:
        day = date.fromisoformat(raw.strip()[:10])
    except ValueError:
        return None
    if not (2000 <= day.year <= 2099):
        return None
    return datetime.combine(day, time(0), tzinfo=zone)


def _filters(request: HttpRequest, *, default_level: str = "work_center") -> Filters:
    """The level, the area/work center/site the page is narrowed to, and the range (a preset
    or custom dates, on the plant's clock)."""
    now = timezone.now()
    zone = _plant_zone()
    level = request.GET.get("level", default_level)
    if level not in LEVELS:
        level = default_level
    within = {
        key: request.GET[key].strip()[:64]
        for key in ("site", "area", "work_center", "machine")
        if request.GET.get(key, "").strip()
    }
    preset = request.GET.get("range", "shift")
    midnight = timezone.localtime(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    error = ""
    if preset == "custom":
        start = _day(request.GET.get("start", ""), zone)
        end = _day(request.GET.get("end", ""), zone)
        if start is None or end is None or end < start or (end - start).days > 400:
            error = _("Give a start and an end date (at most 400 days apart); showing today.")
            preset, start, end = "today", midnight, now
        else:
            end = end + timedelta(days=1)
    if preset == "today":
        start, end = midnight, now
    elif preset == "yesterday":
        start, end = midnight - timedelta(days=1), midnight
    elif preset == "week":
        start, end = midnight - timedelta(days=midnight.weekday()), now
    elif preset == "7d":
        start, end = now - timedelta(days=7), now
    elif preset == "30d":
        start, end = now - timedelta(days=30), now
    elif preset != "custom":
        preset = "shift"
        windows = board.windows(now)
        window = next(iter(windows.values()), None)
        start, end = (window.start, now) if window else (midnight, now)
    return Filters(level, within, preset, start, min(end, now), zone, error)


def _filter_context(request: HttpRequest, f: Filters) -> dict:
    if f.error:
        messages.warning(request, f.error)
    return {
        "f": f,
        "presets": PRESETS,
        "levels": LEVEL_NAMES.items(),
        "areas": Area.objects.order_by("code"),
        "work_centers": WorkCenter.objects.select_related("area").order_by("code"),
        "zone_name": str(f.zone),
    }


def _csv(filename: str, header: list[str], rows: list[list]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else _csv_safe(v) for v in row])
    return response


def _csv_safe(value):
    """No formula injection in a spreadsheet: text starting with = + - @ is quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@supervisor_view
def oee_page(request: HttpRequest) -> HttpResponse:
    """OEE and its losses per level (site, area, work center, machine) for a range, each
    row leading down a level and a machine to its timeline; the six big losses as bars and
    the OEE trend by day."""
    f = _filters(request)
    now = timezone.now()
    rows = figures(f.level, start=f.start, end=f.end, now=now, within=f.within)
    if request.GET.get("format") == "csv":
        header = [
            "level",
            "code",
            "name",
            "machines",
            "oee",
            "availability",
            "performance",
            "quality",
            "working_s",
            "planned_s",
            "run_s",
            "good",
            "scrap",
            *[f"loss_{k}_s" for k in LOSS_NAMES],
        ]
        return _csv(
            f"oee-{f.level}-{f.start:%Y%m%d}.csv",
            header,
            [
                [
                    f.level,
                    r.code,
                    r.name,
                    r.machines,
                    _ratio(r.kpis.oee),
                    _ratio(r.kpis.availability),
                    _ratio(r.kpis.performance),
                    _ratio(r.kpis.quality),
                    round(r.kpis.working_s),
                    round(r.kpis.planned_s),
                    round(r.kpis.run_s),
                    r.kpis.good,
                    r.kpis.scrap,
                    *[round(r.kpis.losses[k]) for k in LOSS_NAMES],
                ]
                for r in rows
            ],
        )
    total = figures_total(start=f.start, end=f.end, within=f.within, now=now)
    losses = []
    if total is not None:
        losses = [
            charts.Bar(str(LOSS_NAMES[k]), v, f"{v / 3600:.1f} h", strong=k == "breakdowns")
            for k, v in sorted(total.losses.items(), key=lambda kv: -kv[1])
        ]
    first = timezone.localtime(now, f.zone).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [first - timedelta(days=back) for back in range(13, -1, -1)]
    daily = daily_totals(starts, within=f.within, now=now)
    days = [(f"{d:%d.%m.}", k.oee if k else None) for d, k in zip(starts, daily, strict=True)]
    child = CHILD.get(f.level)
    return render(
        request,
        "performance/oee.html",
        {
            **_filter_context(request, f),
            "rows": rows,
            "total": total,
            "child": child,
            "loss_names": LOSS_NAMES,
            "losses_svg": mark_safe(charts.bars(losses)) if losses else "",
            "trend_svg": mark_safe(charts.trend(days)),
            "now": now,
        },
    )


@supervisor_view
def downtime_page(request: HttpRequest) -> HttpResponse:
    """The downtime Pareto by reason for the range, and the stops still waiting for their
    reason, each with the reason tree to give it."""
    from shopfloor.downtime import downtimes_needing_reason, reason_tree, set_downtime_reason
    from shopfloor.models import DowntimeRecord

    if request.method == "POST":
        record = DowntimeRecord.objects.filter(pk=row_id(request.POST.get("record"))).first()
        if record is None:
            messages.error(request, _("That stop is not known; nothing was changed."))
        else:
            try:
                set_downtime_reason(
                    record,
                    actor=request.user,
                    code=request.POST.get("reason", "")[:64],
                    note=request.POST.get("note", "")[:500],
                )
                messages.success(
                    request,
                    _("Reason saved for the stop of %(machine)s.")
                    % {"machine": record.machine.code},
                )
            except DomainError as exc:
                messages.error(request, exc.message)
        return redirect(request.get_full_path())
    f = _filters(request)
    pareto = downtime_pareto(start=f.start, end=f.end, within=f.within)
    if request.GET.get("format") == "csv":
        return _csv(
            f"downtime-{f.start:%Y%m%d}.csv",
            ["reason", "planned", "stops", "seconds"],
            [[r.reason or "(no reason yet)", r.planned, r.stops, round(r.seconds)] for r in pareto],
        )
    waiting = downtimes_needing_reason()
    for level, code in f.within.items():
        waiting = waiting.filter(**{f"machine__{LEVELS[level]}": code})
    total = sum(r.seconds for r in pareto) or 1
    bars = [
        charts.Bar(
            r.reason or str(_("No reason yet")),
            r.seconds,
            duration_words(r.seconds),
            strong=not r.reason,
        )
        for r in pareto[:15]
    ]
    return render(
        request,
        "performance/downtime.html",
        {
            **_filter_context(request, f),
            "pareto": [(r, r.seconds / total) for r in pareto],
            "pareto_svg": mark_safe(charts.bars(bars, cumulative=True)) if bars else "",
            "waiting": list(waiting[:100]),
            "tree": reason_tree(),
            "now": timezone.now(),
        },
    )


def duration_words(seconds: float) -> str:
    from .templatetags.mes_board import duration

    return duration(seconds)


@supervisor_view
def machine_timeline(request: HttpRequest, code: str) -> HttpResponse:
    """A machine's states across one day on the plant's clock (ISA-101 level 4): the band,
    the events behind it, and the day's OEE."""
    from shopfloor.models import MachineStateEvent

    machine = get_object_or_404(
        Machine.objects.select_related("work_center__area__site"), code=code[:64]
    )
    site = machine.work_center.area.site
    try:
        zone = zoneinfo.ZoneInfo(site.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = timezone.get_current_timezone()
    now = timezone.now()
    today = timezone.localtime(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    start = _day(request.GET.get("day", ""), zone) or today
    end = min(start + timedelta(days=1), now)
    if end <= start:
        start, end = today, now
    before = (
        MachineStateEvent.objects.filter(machine=machine, started_at__lt=start)
        .order_by("-started_at", "-id")
        .first()
    )
    events = list(
        MachineStateEvent.objects.filter(
            machine=machine, started_at__gte=start, started_at__lt=end
        ).order_by("started_at", "id")[:5000]
    )
    spans = []
    state, since = (before.state, start) if before else ("unknown", start)
    labels = dict(MachineState.choices)
    for event in events:
        if event.started_at > since:
            spans.append((state, str(labels.get(state, state)), since, event.started_at))
        state, since = event.state, event.started_at
    if not events and before is None and machine.state_since <= start:
        state = machine.state
    spans.append((state, str(labels.get(state, state)), since, end))
    off = calendar_of_site(site).gaps(start, end)
    kpis = figures("machine", code=machine.code, start=start, end=end, now=now)
    return render(
        request,
        "performance/timeline.html",
        {
            "machine": machine,
            "site": site,
            "day": start,
            "previous": f"{start - timedelta(days=1):%Y-%m-%d}",
            "next": f"{start + timedelta(days=1):%Y-%m-%d}"
            if start + timedelta(days=1) < now
            else "",
            "svg": mark_safe(charts.timeline(spans, start=start, end=end, off=off, zone=zone)),
            "events": events,
            "kpis": kpis[0].kpis if kpis else None,
            "zone": zone,
        },
    )


@supervisor_view
def schedule_page(request: HttpRequest) -> HttpResponse:
    """The live schedule as a Gantt per machine for the next hours, in the shift calendar
    (non-working time shaded), with the reason of the last re-plan, the late and at-risk
    orders, and how far behind the ERP is."""
    from erp_sync.delivery import delivery_lag

    now = timezone.now()
    zone = _plant_zone()
    hours = parse_int(request.GET.get("hours", "24"))
    hours = 24 if hours is None else max(4, min(hours, 24 * 14))
    start, end = now - timedelta(hours=1), now + timedelta(hours=hours)
    area = request.GET.get("area", "")[:64]
    ops = (
        Operation.objects.filter(
            planned_end__gt=start,
            planned_start__lt=end,
            work_order__status__in=[WorkOrderStatus.RELEASED, WorkOrderStatus.IN_PROGRESS],
        )
        .exclude(status__in=[OperationStatus.DONE, OperationStatus.CANCELLED])
        .select_related("work_order", "machine", "work_center")
        .order_by("planned_start")
    )
    machines = Machine.objects.filter(is_active=True).select_related("work_center")
    if area:
        ops = ops.filter(work_center__area__code=area)
        machines = machines.filter(work_center__area__code=area)
    lanes: dict[str, list] = {m.code: [] for m in machines.order_by("work_center__code", "code")}
    for op in ops[:2000]:
        lane = op.machine.code if op.machine_id else f"{op.work_center.code}: {_('queue')}"
        wo = op.work_order
        lanes.setdefault(lane, []).append(
            charts.GanttBar(
                start=op.planned_start,
                end=op.planned_end,
                label=f"{wo.number}/{op.sequence}",
                title=f"{op.label} {op.name}: {op.planned_start.astimezone(zone):%a %H:%M} "
                f"to {op.planned_end.astimezone(zone):%a %H:%M}; "
                f"due {wo.due_date.astimezone(zone):%a %d.%m. %H:%M}",
                late=wo.at_risk,
                rush=wo.is_rush,
                running=op.status == OperationStatus.RUNNING,
            )
        )
    site = Site.objects.order_by("code").first()
    off = calendar_of_site(site).gaps(start, end) if site else []
    late = (
        WorkOrder.objects.filter(
            status__in=[
                WorkOrderStatus.RELEASED,
                WorkOrderStatus.IN_PROGRESS,
                WorkOrderStatus.ON_HOLD,
            ]
        )
        .filter(Q(at_risk=True) | Q(due_date__lt=now))
        .select_related("product")
        .order_by("due_date")[:100]
    )
    state = ScheduleState.objects.filter(pk=1).first()
    return render(
        request,
        "performance/schedule.html",
        {
            "svg": mark_safe(
                charts.gantt(list(lanes.items()), start=start, end=end, off=off, zone=zone, now=now)
            ),
            "late": late,
            "state": state,
            "lag": delivery_lag(),
            "hours": hours,
            "hour_choices": [8, 24, 48, 72, 168],
            "area": area,
            "areas": Area.objects.order_by("code"),
            "now": now,
        },
    )
