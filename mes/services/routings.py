"""Routings: master data with a rule of its own (one active routing per product)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from ..models import Routing


def activate_routing(routing: Routing) -> Routing:
    """Make ``routing`` the product's active routing; its other routings become inactive."""
    with transaction.atomic():
        siblings: Iterable[Routing] = Routing.objects.select_for_update().filter(
            product_id=routing.product_id
        )
        for other in siblings:
            if other.pk != routing.pk and other.active:
                other.active = False
                other.save(update_fields=["active"])
        routing.active = True
        routing.save()
        return routing
