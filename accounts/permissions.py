"""API permissions: a key's scopes decide what it may do."""

from rest_framework import permissions

from .authentication import Principal

SAFE_METHODS = permissions.SAFE_METHODS


class HasScope(permissions.BasePermission):
    """Reads need the view's `read_scope` (default `read`); writes its `write_scope` (`write`)."""

    message = "The API key lacks the scope this needs."

    def has_permission(self, request, view):
        principal = request.user
        if not isinstance(principal, Principal):
            return False
        if request.method in SAFE_METHODS:
            needed = getattr(view, "read_scope", "read")
        else:
            needed = getattr(view, "write_scope", "write")
        if needed not in principal.scopes:
            self.message = f"The API key lacks the `{needed}` scope."
            return False
        return True
