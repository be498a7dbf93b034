"""The quality vocabulary, with labels for people."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class CheckKind(models.TextChoices):
    VARIABLE = "variable", _("Measured value")
    ATTRIBUTE = "attribute", _("Pass / fail")


class Reaction(models.TextChoices):
    """What an out-of-spec result does besides opening a nonconformance."""

    WARN = "warn", _("Warn only")
    HOLD_OPERATION = "hold_operation", _("Hold the operation")
    HOLD_WORK_ORDER = "hold_work_order", _("Hold the work order")


class Verdict(models.TextChoices):
    PASS = "pass", _("In spec")
    FAIL = "fail", _("Out of spec")


class NonconformanceStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class Disposition(models.TextChoices):
    USE_AS_IS = "use_as_is", _("Use as is")
    REWORK = "rework", _("Rework")
    SCRAP = "scrap", _("Scrap")


class SignatureMeaning(models.TextChoices):
    """21 CFR 11.50: the meaning of a signature is part of it."""

    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    REVIEWED = "reviewed", _("Reviewed")


class ScrapCategory(models.TextChoices):
    MATERIAL = "material", _("Material")
    PROCESS = "process", _("Process")
    MACHINE = "machine", _("Machine")
    SETUP = "setup", _("Setup")
    OTHER = "other", _("Other")


# Pause reason of an operation held by quality (stored in English, like the other reasons).
QUALITY_HOLD = "Quality hold"
