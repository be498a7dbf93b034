"""What each role may do in the admin: one table, the same as docs/roles.md (a test holds
them together). Screens decide by role in their views; the admin decides by Django model
permissions, which :func:`sync_role_permissions` gives each role's group from this table
after every migrate (so a new model is decided here, or nobody but superusers sees it)."""

from __future__ import annotations

from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS

from .choices import Role

V, VA, VC, VAC = ("view",), ("view", "add"), ("view", "change"), ("view", "add", "change")

# Roles that may open /admin/ (their users carry is_staff); operators work on terminals only.
STAFF_ROLES = (Role.PLANNER, Role.SUPERVISOR, Role.ADMIN)

# model ("app_label.model") -> the permissions each role's group holds. The admin role holds
# every permission of every model (it is the plant's system administrator).
MODEL_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    Role.PLANNER: {
        "mes.site": V,
        "mes.area": V,
        "mes.workcenter": V,
        "mes.machine": V,
        "mes.product": VAC,
        "mes.routing": VAC,
        "mes.routingstep": VAC,
        "mes.workorder": VAC,
        "mes.operation": V,
        "mes.auditrecord": V,
        "calendars.shift": VAC,
        "calendars.shiftbreak": VAC,
        "calendars.calendarexception": VAC,
        "quality.inspectioncharacteristic": V,
        "quality.scrapreason": V,
    },
    Role.SUPERVISOR: {
        "mes.site": V,
        "mes.area": V,
        "mes.workcenter": V,
        "mes.machine": VC,
        "mes.product": V,
        "mes.routing": V,
        "mes.routingstep": V,
        "mes.workorder": VC,
        "mes.operation": V,
        "mes.operatorprofile": VC,
        "mes.auditrecord": V,
        "calendars.shift": V,
        "calendars.shiftbreak": V,
        "calendars.calendarexception": VAC,
        "quality.inspectioncharacteristic": VAC,
        "quality.nonconformance": V,
        "quality.scrapreason": VAC,
        "shopfloor.downtimereason": VAC,
        "shopfloor.downtimerecord": V,
        "shopfloor.plcstatus": V,
        "terminal.terminal": VC,
        "terminal.signinthrottle": VC,
    },
    Role.OPERATOR: {},
}


def sync_role_permissions(apps=global_apps, using: str = DEFAULT_DB_ALIAS) -> None:
    """Make every role's group exist and hold exactly the permissions of the table."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    everything = Permission.objects.using(using).select_related("content_type")
    by_key = {
        (p.content_type.app_label, p.content_type.model, p.codename): p.pk for p in everything
    }
    for role in Role:
        group, _ = Group.objects.using(using).get_or_create(name=role.value)
        if role == Role.ADMIN:
            wanted = set(by_key.values())
        else:
            wanted = set()
            for model, actions in MODEL_PERMISSIONS[role].items():
                app_label, name = model.split(".")
                for action in actions:
                    pk = by_key.get((app_label, name, f"{action}_{name}"))
                    if pk is not None:  # a model of an app not migrated yet
                        wanted.add(pk)
        current = set(group.permissions.values_list("pk", flat=True))
        if current != wanted:
            group.permissions.set(wanted)


def _after_migrate(sender, app_config=None, using=DEFAULT_DB_ALIAS, apps=global_apps, **kw):
    # Once per migrate: after the last app's permissions exist.
    if sender is not None and sender.label == list(global_apps.get_app_configs())[-1].label:
        sync_role_permissions(apps, using)
