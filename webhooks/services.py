"""Webhooks: an account's endpoints, told by signed POSTs when its background-removal jobs end."""

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
import uuid
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from core.errors import BadRequestError, ConflictError
from cutouts.models import BgRemoveJob
from sources.origins.base import OriginError
from sources.origins.net import address_allowed, post_url
from sources.selectors import source_bg_remove_model
from webhooks.models import Webhook, WebhookDelivery

logger = logging.getLogger(__name__)
Status = WebhookDelivery.Status

EVENTS = ("job.done", "job.failed")
# Bounds the deliveries one finished job can cause.
WEBHOOKS_PER_ACCOUNT = 10
CONNECT_TIMEOUT = 5
TOTAL_TIMEOUT = 10
USER_AGENT = "cutout-webhooks/1"
SIGNATURE_HEADER = "X-Cutout-Signature"
# Kept below the broker's visibility timeout, so a waiting retry is not handed out twice.
RETRY_MAX_COUNTDOWN = 300

# The address errors of the network-safe client, in words about the webhook.
_ATTEMPT_ERRORS = {
    "origin_address_refused": "The webhook's address is not allowed (private, loopback or reserved network).",
    "origin_not_found": "The webhook's host name does not resolve.",
    "origin_timeout": f"The webhook endpoint did not answer within {TOTAL_TIMEOUT} seconds.",
    "origin_tls_failed": "The TLS handshake with the webhook endpoint failed (is its certificate valid?).",
    "origin_forbidden": "The webhook URL must use https.",
    "origin_loop": "The webhook URL leads back to this service; deliveries are never made to ourselves.",
}
# Errors that another attempt cannot fix.
_FINAL_ERRORS = {"origin_address_refused", "origin_forbidden", "origin_loop"}


class WebhookInvalidError(BadRequestError):
    code = "invalid"

    def __init__(self, message, *, field="url"):
        super().__init__(message)
        self.fields = {field: [message]}


# --- Writes ------------------------------------------------------------------------------------

def webhook_url_check(*, url: str) -> None:
    """Refuses what is knowable from the URL alone; the connected address is checked on delivery."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and settings.ORIGIN_ALLOW_LOOPBACK):
        raise WebhookInvalidError("The webhook URL must use https.")
    try:
        parts.port  # noqa: B018 -- raises for a port out of range, which delivery could not use.
    except ValueError:
        raise WebhookInvalidError("The webhook URL's port is not valid.") from None
    if not parts.hostname:
        raise WebhookInvalidError("The webhook URL has no host.")
    if parts.username is not None or parts.password is not None:
        # They would not be sent; the signature is how a receiver knows the sender.
        raise WebhookInvalidError("The webhook URL may not contain credentials.")
    try:
        ip = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return  # A host name: resolved, and its address checked, at each delivery.
    if not address_allowed(ip):
        raise WebhookInvalidError("The webhook's address is not allowed (private, loopback or reserved network).")


def webhook_create(*, account: Account, url: str, events: list[str] | None = None) -> Webhook:
    """A new webhook with a fresh signing secret, which the API shows only in its answer to this."""
    webhook_url_check(url=url)
    chosen = set(EVENTS if events is None else events)
    if not chosen or chosen - set(EVENTS):
        raise WebhookInvalidError(f"Events must be among {', '.join(EVENTS)}.", field="events")
    with transaction.atomic():
        # The lock serialises concurrent creations, so the limit holds.
        Account.objects.select_for_update().get(pk=account.pk)
        if Webhook.objects.filter(account=account).count() >= WEBHOOKS_PER_ACCOUNT:
            raise ConflictError(f"An account may have at most {WEBHOOKS_PER_ACCOUNT} webhooks.",
                                code="webhook_limit")
        return Webhook.objects.create(account=account, url=url, events=[e for e in EVENTS if e in chosen],
                                      secret=f"whsec_{secrets.token_hex(24)}")


def webhook_delete(*, webhook: Webhook) -> None:
    # Its deliveries go with it; a retry still queued then finds nothing to send.
    webhook.delete()


# --- Events ------------------------------------------------------------------------------------

def webhook_job_ended(*, job_id, event: str) -> list[uuid.UUID]:
    """One delivery per subscribed webhook; their ids, for the caller to queue. Never raises:
    the job is already over."""
    try:
        return _deliveries_create(job_id=job_id, event=event)
    except Exception:
        logger.exception("webhook events for bg-remove job %s (%s) could not be created", job_id, event)
        return []


def _deliveries_create(*, job_id, event: str) -> list[uuid.UUID]:
    job = BgRemoveJob.objects.select_related("source").filter(pk=job_id).first()
    if job is None:
        return []
    webhooks = [w for w in Webhook.objects.filter(account_id=job.source.account_id, active=True) if event in w.events]
    if not webhooks:
        return []
    now = timezone.now()
    ids = [uuid.uuid4() for _ in webhooks]
    WebhookDelivery.objects.bulk_create([
        WebhookDelivery(id=delivery_id, webhook=webhook, event=event, job=job,
                        payload=_event_payload(delivery_id=delivery_id, event=event, job=job, created_at=now))
        for delivery_id, webhook in zip(ids, webhooks)
    ])
    return ids


def webhook_delivery_unqueued(*, delivery_id: uuid.UUID) -> None:
    """Publishing the delivery failed: it ends failed, with the reason, rather than pending forever."""
    WebhookDelivery.objects.filter(pk=delivery_id, status=Status.PENDING).update(
        status=Status.FAILED, last_error="The delivery could not be queued (the job queue was unavailable).",
    )


def _event_payload(*, delivery_id, event: str, job: BgRemoveJob, created_at) -> dict:
    error = job.error
    duration = job.duration_seconds
    return {
        "id": str(delivery_id),
        "type": event,
        "created_at": _iso(created_at),
        "data": {"job": {
            "id": str(job.id), "source": job.source.slug, "path": job.path, "model": job.model,
            "status": job.status, "created_at": _iso(job.created_at), "finished_at": _iso(job.finished_at),
            "duration_seconds": round(duration, 3) if duration is not None else None,
            "error": error, "url": _render_url(job),
        }},
    }


def _render_url(job: BgRemoveJob) -> str:
    url = f"/render/{quote(job.source.slug)}/{quote(job.path)}?bg-remove=true"
    if job.model != source_bg_remove_model(source=job.source):
        # Without it the URL would name the source's default model, i.e. another job.
        url += f"&bg-remove-model={quote(job.model)}"
    return url


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# jsonb keeps keys in its own order: the documented order is restored for the bytes sent.
_KEY_ORDER = {
    (): ("id", "type", "created_at", "data"),
    ("data", "job"): ("id", "source", "path", "model", "status", "created_at", "finished_at",
                      "duration_seconds", "error", "url"),
    ("data", "job", "error"): ("status", "code", "message"),
}


def webhook_event_body(*, payload: dict) -> bytes:
    """The exact bytes POSTed: compact JSON in the documented key order, the same on every attempt."""
    return json.dumps(_ordered(payload, ()), separators=(",", ":")).encode()


def _ordered(value, path: tuple):
    if not isinstance(value, dict):
        return value
    order = _KEY_ORDER.get(path, ())
    keys = sorted(value, key=lambda k: (order.index(k) if k in order else len(order), k))
    return {k: _ordered(value[k], (*path, k)) for k in keys}


# --- Signatures --------------------------------------------------------------------------------

def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The X-Cutout-Signature value: `t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_signature_verify(secret: str, header: str, body: bytes | str, *, tolerance: int = 300,
                             now: float | None = None) -> bool:
    """For receivers: whether `header` signs the raw `body` with `secret`, made within `tolerance` s.

    Verify the bytes as received, before parsing them. The timestamp is signed too, so an old
    delivery replayed later fails the tolerance check. Several `v1=` values may be present;
    one matching is enough.
    """
    if isinstance(body, str):
        body = body.encode()
    timestamp, candidates = None, []
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = webhook_signature(secret=secret, timestamp=timestamp, body=body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, c) for c in candidates)


# --- Delivery ----------------------------------------------------------------------------------

def webhook_delivery_attempt(*, delivery_id) -> WebhookDelivery | None:
    """One POST of a pending delivery, recorded. Still pending afterwards means: try again later."""
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != Status.PENDING:
        return delivery  # Gone with its webhook, or settled by an earlier message.
    now = timezone.now()
    # Claims the attempt, so a duplicate message running at the same moment sends nothing.
    claimed = WebhookDelivery.objects.filter(pk=delivery.pk, status=Status.PENDING, attempts=delivery.attempts)
    if not claimed.update(attempts=delivery.attempts + 1, last_attempt_at=now):
        return None
    delivery.attempts += 1
    delivery.last_attempt_at = now

    response_status, error, final = _post(delivery)
    if error is None:
        fields = {"status": Status.DELIVERED, "delivered_at": timezone.now(), "last_error": ""}
    else:
        given_up = final or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS
        fields = {"status": Status.FAILED if given_up else Status.PENDING, "last_error": error[:300]}
        logger.info("webhook delivery %s attempt %d failed: %s", delivery.pk, delivery.attempts, error)
    fields["response_status"] = response_status
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    for name, value in fields.items():
        setattr(delivery, name, value)
    return delivery


def webhook_retry_countdown(*, attempts: int) -> int:
    """Seconds before the next attempt, after `attempts` failed ones: 10, 20, 40, … capped."""
    return min(10 * 2 ** max(attempts - 1, 0), RETRY_MAX_COUNTDOWN)


def _post(delivery: WebhookDelivery) -> tuple[int | None, str | None, bool]:
    """(response status, error or None when delivered, whether the error is final)."""
    webhook = delivery.webhook
    if not webhook.active:
        return None, "The webhook is disabled.", True
    if urlsplit(webhook.url).scheme != "https" and not settings.ORIGIN_ALLOW_LOOPBACK:
        return None, "The webhook URL must use https.", True
    body = webhook_event_body(payload=delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Cutout-Delivery": str(delivery.pk),
        "X-Cutout-Event": delivery.event,
        SIGNATURE_HEADER: webhook_signature(secret=webhook.secret, timestamp=int(time.time()), body=body),
    }
    try:
        status = post_url(webhook.url, body=body, headers=headers,
                          connect_timeout=CONNECT_TIMEOUT, total_timeout=TOTAL_TIMEOUT)
    except OriginError as exc:
        message = _ATTEMPT_ERRORS.get(exc.code, "The webhook endpoint could not be reached.")
        return None, message, exc.code in _FINAL_ERRORS
    if 200 <= status < 300:
        return status, None, False
    if 300 <= status < 400:
        return status, f"The endpoint answered HTTP {status}; redirects are not followed.", False
    return status, f"The endpoint answered HTTP {status}.", False
