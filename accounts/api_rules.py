"""What each management API route needs: an API key's scope, and a staff session's Django permission."""

from dataclasses import dataclass

# How a staff session may use a route whose answer carries a secret.
SESSION_ALLOWED = "allowed"
SESSION_SUPERUSER = "superuser"  # The admin shows this secret to superusers only.
SESSION_NEVER = "never"  # The admin never shows this secret: only an API key sees it, once.


@dataclass(frozen=True)
class Rule:
    scope: str
    permission: str
    session: str = SESSION_ALLOWED


# Every route of the API, by URL name and method. A route or method missing here is refused to
# every caller (fail closed); tests/api/test_tenancy.py walks the URL conf to prove that each one
# has its rule. A session's permissions are those the admin checks for the same act (revoking a
# key is "change" there, the purge action needs the renders' "delete" here). Permissions are
# named by string so this app does not import the apps above it.
ROUTE_RULES: dict[str, dict[str, Rule]] = {
    "api:account": {"GET": Rule("read", "accounts.view_account")},
    "api:keys": {
        "GET": Rule("keys", "accounts.view_apikey"),
        "POST": Rule("keys", "accounts.add_apikey"),
    },
    "api:key-detail": {
        "GET": Rule("keys", "accounts.view_apikey"),
        "DELETE": Rule("keys", "accounts.change_apikey"),
    },
    "api:sources": {
        "GET": Rule("read", "sources.view_source"),
        "POST": Rule("write", "sources.add_source"),
    },
    "api:source-detail": {
        "GET": Rule("read", "sources.view_source"),
        "PATCH": Rule("write", "sources.change_source"),
        "DELETE": Rule("write", "sources.delete_source"),
    },
    "api:source-tokens": {"POST": Rule("write", "sources.change_source", session=SESSION_SUPERUSER)},
    "api:jobs": {"GET": Rule("read", "cutouts.view_bgremovejob")},
    "api:job-detail": {"GET": Rule("read", "cutouts.view_bgremovejob")},
    "api:purge": {"POST": Rule("purge", "rendering.delete_render")},
    "api:prewarm": {"POST": Rule("write", "cutouts.add_bgremovejob")},
    "api:usage": {"GET": Rule("read", "usage.view_usagedaily")},
    "api:webhooks": {
        "GET": Rule("read", "webhooks.view_webhook"),
        "POST": Rule("write", "webhooks.add_webhook", session=SESSION_NEVER),
    },
    "api:webhook-detail": {
        "GET": Rule("read", "webhooks.view_webhook"),
        "DELETE": Rule("write", "webhooks.delete_webhook"),
    },
    "api:webhook-deliveries": {"GET": Rule("read", "webhooks.view_webhookdelivery")},
}


# Scopes of APIs outside this one, which have no route here: the remove.bg-compatible API
# (removebg_api/, `X-Api-Key`). A staff session may grant one with the permission named.
OTHER_API_SCOPES: dict[str, str] = {"removebg": "accounts.add_apikey"}


def route_rule(*, route: str | None, method: str) -> Rule | None:
    """The rule for a route and method; HEAD and OPTIONS follow GET. None: refused."""
    rules = ROUTE_RULES.get(route or "", {})
    if method in ("HEAD", "OPTIONS"):
        method = "GET"
    return rules.get(method)


def session_scopes(user) -> frozenset:
    """The scopes a staff user holds: a scope whose every route the user's permissions allow.

    What a session may grant a new key is bounded by this, as a key is by its own scopes."""
    needed: dict[str, set[str]] = {scope: {permission} for scope, permission in OTHER_API_SCOPES.items()}
    for rules in ROUTE_RULES.values():
        for rule in rules.values():
            needed.setdefault(rule.scope, set()).add(rule.permission)
    return frozenset(scope for scope, perms in needed.items() if user.has_perms(perms))
