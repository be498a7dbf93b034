"""The product's one date format for templates: ``{% load mes_format %}`` then
``{{ wo.due_date|when }}`` gives "Tue 01 Dec 14:00" on the plant's clock (the active time
zone), with the year when it is not this year. See :func:`mes.formats.display_when`."""

from __future__ import annotations

from django import template

from ..formats import display_when

register = template.Library()


@register.filter(is_safe=False)
def when(value: object) -> str:
    """A datetime (or date, or ISO string) in the product's format; None gives "", so that
    ``|default:`` works after it."""
    return display_when(value)
