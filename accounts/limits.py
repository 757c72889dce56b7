"""Per-account limits: each one's effective value, and the rate counters (django-ratelimit)."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django_ratelimit.core import get_usage

from accounts.models import Account
from core.errors import ServiceError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountLimits:
    render_rate: str
    bg_remove_rate: str
    bg_remove_max_pending: int


def account_limits(account: Account) -> AccountLimits:
    """The account's own limits where set, else the platform's (read at call time)."""
    return AccountLimits(
        render_rate=account.render_rate_limit or settings.RENDER_RATE_LIMIT,
        bg_remove_rate=account.bg_remove_rate_limit or settings.BG_REMOVE_RATE_LIMIT,
        bg_remove_max_pending=account.bg_remove_max_pending or settings.BG_REMOVE_MAX_PENDING_PER_ACCOUNT,
    )


class RateLimitedError(ServiceError):
    status_code = 429
    code = "rate_limited"


def _usage(*, group: str, account: Account, rate: str, increment: bool) -> dict | None:
    # django-ratelimit's counters live in the default cache (Redis in production), so every web
    # process shares them. No request is needed: the key is the account.
    try:
        return get_usage(None, group=group, key=lambda _group, _request: str(account.pk), rate=rate,
                         increment=increment)
    except Exception as exc:  # The cache's client raises its own types.
        # Fail open: with the cache down, cached images are still served; new bg-remove work
        # is stopped by the broker being down too, or by the queue ceilings (in the database).
        logger.warning("rate limit %r not checked, cache unavailable: %s", group, exc)
        return None


def rate_limit(*, group: str, code: str, account: Account, rate: str, increment: bool = True) -> None:
    usage = _usage(group=group, account=account, rate=rate, increment=increment)
    over = usage and (usage["should_limit"] if increment else usage["count"] >= usage["limit"])
    if over:
        raise RateLimitedError(
            f"Over the account's {group} limit of {rate}; retry later.",
            code=code, retry_after=max(1, usage["time_left"]),
        )


def rate_count(*, group: str, account: Account, rate: str) -> None:
    """Counts one event against the account's `rate` for `group`, without refusing anything."""
    _usage(group=group, account=account, rate=rate, increment=True)


def render_admit(*, account: Account) -> None:
    """Every rendering request, cached or not, counts against the account's request limit."""
    rate_limit(group="request rate", code="request_rate_limited", account=account,
               rate=account_limits(account).render_rate)


def rate_status(*, group: str, account: Account, rate: str) -> dict | None:
    """The account's counter for `group` without counting (django-ratelimit's usage: count,
    limit, time_left), for X-RateLimit-* headers; None when the cache is unavailable."""
    return _usage(group=group, account=account, rate=rate, increment=False)
