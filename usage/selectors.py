"""Reads for usage, scoped by account."""

from datetime import date

from django.db.models import Sum

from usage.models import UsageDaily


def renders_per_day_for(*, account, since: date) -> dict[date, int]:
    """Renders served per day since `since`, across the account's sources (days without any: absent)."""
    return dict(UsageDaily.objects.filter(source__account=account, day__gte=since)
                .values_list("day").annotate(n=Sum("renders")))
