"""API permissions: a key needs its route's scope, a staff session its Django permission (api_rules.py)."""

from rest_framework import exceptions, permissions

from accounts.api_rules import SESSION_NEVER, SESSION_SUPERUSER, route_rule
from accounts.authentication import NOT_AUTHENTICATED, Principal


class ApiKeyRequiredError(exceptions.PermissionDenied):
    # DRF's family, not ServiceError: the browsable API asks permissions to decide which forms
    # to show and catches only DRF's exceptions (ours would turn the page into a 500).
    default_code = "api_key_required"
    default_detail = "This answer carries a secret the admin does not show you: use an API key."


class HasScope(permissions.BasePermission):
    """The route's rule decides: a key needs the rule's scope, a staff session its permission."""

    message = "The API key lacks the scope this needs."

    def has_permission(self, request, view):
        principal = request.user
        if not isinstance(principal, Principal):
            # DRF's own 401 says only "not provided"; this one says what to send.
            raise exceptions.NotAuthenticated(NOT_AUTHENTICATED)
        if not hasattr(view, request.method.lower()) and request.method not in ("HEAD", "OPTIONS"):
            return True  # Not implemented: DRF answers 405.
        match = getattr(request, "resolver_match", None)
        rule = route_rule(route=match.view_name if match else None, method=request.method)
        if rule is None:
            # Fail closed: a route without a rule in accounts/api_rules.py is nobody's.
            self.message = "This route has no permission rule yet, so it is refused."
            return False
        if principal.user is None:
            if rule.scope not in principal.scopes:
                self.message = f"The API key lacks the `{rule.scope}` scope."
                return False
            return True
        if not principal.user.has_perm(rule.permission):
            self.message = (f"Your staff account lacks the `{rule.permission}` permission: ask a superuser to add "
                            "you to the Account managers group, or use an API key.")
            return False
        if rule.session == SESSION_NEVER or (rule.session == SESSION_SUPERUSER and not principal.user.is_superuser):
            raise ApiKeyRequiredError()
        return True
