"""Filters shared by the HTML lists (and, later, the API)."""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .choices import Priority, WorkOrderStatus
from .models import Product, WorkOrder
from .statemachine import WORK_ORDER_TERMINAL

DUE_CHOICES = [
    ("late", _("Late (past due, not finished)")),
    ("at_risk", _("At risk (projected to end after due)")),
    ("today", _("Due today")),
    ("week", _("Due within 7 days")),
    ("later", _("Due later")),
]


class WorkOrderFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label=_("Number"), method="filter_q")
    status = django_filters.MultipleChoiceFilter(
        choices=WorkOrderStatus.choices, widget=forms.CheckboxSelectMultiple
    )
    priority = django_filters.ChoiceFilter(choices=Priority.choices, empty_label=_("Any"))
    product = django_filters.ModelChoiceFilter(
        queryset=Product.objects.all(), to_field_name="code", empty_label=_("Any product")
    )
    due = django_filters.ChoiceFilter(
        choices=DUE_CHOICES, method="filter_due", empty_label=_("Any due date")
    )

    class Meta:
        model = WorkOrder
        fields = ["q", "status", "priority", "product", "due"]

    def filter_q(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(number__icontains=value.strip()) if value.strip() else queryset

    def filter_due(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        now = timezone.now()
        start_of_day = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
        open_orders = ~Q(status__in=WORK_ORDER_TERMINAL)
        if value == "late":
            return queryset.filter(open_orders, due_date__lt=now)
        if value == "at_risk":
            return queryset.filter(open_orders, at_risk=True)
        if value == "today":
            return queryset.filter(
                due_date__gte=start_of_day, due_date__lt=start_of_day + timedelta(days=1)
            )
        if value == "week":
            return queryset.filter(due_date__gte=now, due_date__lt=now + timedelta(days=7))
        if value == "later":
            return queryset.filter(due_date__gte=now + timedelta(days=7))
        return queryset
