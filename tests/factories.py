"""factory_boy factories for the production domain. Build master data freely; create work
orders through the services (``make_work_order``) so that state is always reachable."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from mes import services
from mes.choices import Role
from mes.models import Area, Machine, Product, Routing, RoutingStep, Site, WorkCenter, WorkOrder


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password("correct-horse-battery")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(*Group.objects.filter(name__in=extracted))


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    code = factory.Sequence(lambda n: f"SITE-{n}")
    name = factory.Sequence(lambda n: f"Plant {n}")
    time_zone = "Europe/Berlin"


class AreaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Area

    code = factory.Sequence(lambda n: f"AREA-{n}")
    name = factory.Sequence(lambda n: f"Area {n}")
    site = factory.SubFactory(SiteFactory)


class WorkCenterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkCenter

    code = factory.Sequence(lambda n: f"WC-{n}")
    name = factory.Sequence(lambda n: f"Work center {n}")
    area = factory.SubFactory(AreaFactory)


class MachineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Machine

    code = factory.Sequence(lambda n: f"M-{n}")
    name = factory.Sequence(lambda n: f"Machine {n}")
    work_center = factory.SubFactory(WorkCenterFactory)


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    code = factory.Sequence(lambda n: f"PROD-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")
    unit = "pcs"


class RoutingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Routing

    code = factory.Sequence(lambda n: f"RT-{n}")
    product = factory.SubFactory(ProductFactory)
    version = 1
    active = True


class RoutingStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RoutingStep

    routing = factory.SubFactory(RoutingFactory)
    sequence = factory.Sequence(lambda n: (n + 1) * 10)
    name = factory.Sequence(lambda n: f"Step {n}")
    work_center = factory.SubFactory(WorkCenterFactory)
    setup_seconds = 300
    cycle_seconds = Decimal("12.5")
    instructions = "Check the drawing before the first part."


def make_routing(steps: int = 3, *, machines_per_center: int = 1, product=None) -> Routing:
    """A product's active routing with ``steps`` steps, each at its own work center that has
    ``machines_per_center`` machines."""
    routing = RoutingFactory(product=product or ProductFactory())
    for i in range(steps):
        wc = WorkCenterFactory()
        for _ in range(machines_per_center):
            MachineFactory(work_center=wc)
        RoutingStepFactory(routing=routing, sequence=(i + 1) * 10, work_center=wc)
    return routing


def make_work_order(
    *,
    actor,
    steps: int = 3,
    quantity: int = 100,
    release: bool = True,
    routing=None,
    number: str | None = None,
    due_in_days: int = 3,
) -> WorkOrder:
    routing = routing or make_routing(steps)
    number = number or f"WO-{WorkOrder.objects.count() + 1:05d}-{routing.pk}"
    return services.create_work_order(
        number=number,
        product=routing.product,
        routing=routing,
        quantity=quantity,
        due_date=timezone.now() + timedelta(days=due_in_days),
        actor=actor,
        release=release,
    )


def enrol_terminal(work_center, name: str = "") -> str:
    """Enrol a terminal at ``work_center`` as a supervisor's setup does; returns the token
    its browser's cookie carries."""
    from shopfloor.terminal.services import enrol_terminal as enrol

    setup_user = UserFactory(username="terminal-setup", roles=[Role.SUPERVISOR])
    _terminal, token = enrol(
        work_center=work_center, name=name or f"{work_center.code} test", actor=setup_user
    )
    return token
