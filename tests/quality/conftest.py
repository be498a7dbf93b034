"""A routing whose first step has a measured check and whose second has a pass/fail one."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mes.quality.choices import CheckKind, Reaction
from mes.quality.models import InspectionCharacteristic
from tests.factories import UserFactory, make_routing, make_work_order


def add_check(step, **values) -> InspectionCharacteristic:
    defaults = {
        "code": "HOLE-D",
        "name": "Hole diameter",
        "kind": CheckKind.VARIABLE,
        "nominal": Decimal("8.00"),
        "lower_limit": Decimal("7.95"),
        "upper_limit": Decimal("8.05"),
        "unit": "mm",
        "decimals": 2,
        "first_piece": True,
        "every_n": 50,
        "reaction": Reaction.HOLD_OPERATION,
    }
    return InspectionCharacteristic.objects.create(step=step, **{**defaults, **values})


@pytest.fixture
def checked_routing(db):
    routing = make_routing(3)
    steps = list(routing.steps.order_by("sequence"))
    add_check(steps[0])
    add_check(
        steps[1],
        code="VISUAL",
        name="Visual inspection",
        kind=CheckKind.ATTRIBUTE,
        nominal=None,
        lower_limit=None,
        upper_limit=None,
        unit="",
        defect_codes=["SCRATCH", "DENT"],
        every_n=None,
        reaction=Reaction.HOLD_WORK_ORDER,
    )
    return routing


@pytest.fixture
def quality_order(checked_routing, supervisor):
    return make_work_order(actor=supervisor, routing=checked_routing, quantity=100)


@pytest.fixture
def quality_lead(db):
    """Quinn, a second supervisor: signs what Sam recorded."""
    from mes.choices import Role

    return UserFactory(
        username="quinn", first_name="Quinn", last_name="Meyer", roles=[Role.SUPERVISOR]
    )
