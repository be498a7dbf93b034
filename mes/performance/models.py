"""Rollups: per machine and quarter hour, the seconds in each state (in the shift calendar's
working time), short stops, and the units counted with their ideal time. Written only by
:mod:`mes.performance.rollups` (as events arrive, or rebuilt from the event log); the OEE
figures are sums over them (:mod:`mes.performance.selectors`)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from mes.models import Machine


class MachineBucket(models.Model):
    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="+")
    start = models.DateTimeField(_("quarter hour from"))
    run_s = models.FloatField(default=0)
    run_off_s = models.FloatField(default=0)
    setup_s = models.FloatField(default=0)
    down_s = models.FloatField(default=0)
    idle_s = models.FloatField(default=0)
    nowork_s = models.FloatField(default=0)
    nodata_s = models.FloatField(default=0)
    small_s = models.FloatField(default=0)
    small_n = models.IntegerField(default=0)
    good = models.FloatField(default=0)
    scrap = models.FloatField(default=0)
    startup_scrap = models.FloatField(default=0)
    ideal_s = models.FloatField(default=0)
    scrap_ideal_s = models.FloatField(default=0)
    startup_ideal_s = models.FloatField(default=0)

    class Meta:
        ordering = ["machine", "start"]
        verbose_name = _("performance rollup")
        constraints = [
            models.UniqueConstraint(fields=["machine", "start"], name="bucket_machine_start")
        ]
        indexes = [models.Index(fields=["start"], name="bucket_start")]

    def __str__(self) -> str:
        return f"{self.machine_id} {self.start:%Y-%m-%d %H:%M}"
