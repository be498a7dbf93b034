"""Housekeeping of the terminals' own tables (thin Celery task)."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .models import FormToken, SignInThrottle


@shared_task(ignore_result=True)
def prune_terminal_records(days: int = 7) -> dict:
    """Form tokens and sign-in counts only matter for minutes; keep a week for audits."""
    cutoff = timezone.now() - timedelta(days=days)
    tokens, _ = FormToken.objects.filter(used_at__lt=cutoff).delete()
    counts, _ = SignInThrottle.objects.filter(last_at__lt=cutoff).delete()
    return {"form_tokens": tokens, "sign_in_counts": counts}
