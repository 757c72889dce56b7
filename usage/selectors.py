"""Reads for usage, scoped by account."""

from dataclasses import dataclass
from datetime import date

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from cutouts.models import BgRemoveJob
from usage.models import UsageDaily


def renders_per_day_for(*, account, since: date) -> dict[date, int]:
    """Renders served per day since `since`, across the account's sources (days without any: absent)."""
    return dict(UsageDaily.objects.filter(source__account=account, day__gte=since)
                .values_list("day").annotate(n=Sum("renders")))


@dataclass(frozen=True)
class DayUsage:
    renders: int = 0
    cutouts: int = 0
    bytes_served: int = 0


def usage_days_for(*, account, since: date) -> dict[date, DayUsage]:
    """Per day since `since` (UTC days), across the account's sources: renders and bytes served,
    and cutouts made (background-removal jobs that finished done that day). Days without any: absent."""
    served = (UsageDaily.objects.filter(source__account=account, day__gte=since)
              .values_list("day").annotate(renders=Sum("renders"), bytes_served=Sum("bytes_served")))
    made = dict(BgRemoveJob.objects.filter(source__account=account, status=BgRemoveJob.Status.DONE,
                                           finished_at__date__gte=since)
                .annotate(day=TruncDate("finished_at")).values_list("day").annotate(n=Count("id")))
    days = {day: DayUsage(renders=renders, bytes_served=bytes_served) for day, renders, bytes_served in served}
    for day, n in made.items():
        days[day] = DayUsage(renders=days.get(day, DayUsage()).renders, cutouts=n,
                             bytes_served=days.get(day, DayUsage()).bytes_served)
    return days
