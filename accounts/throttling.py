"""API throttling: one request budget per account, shared by its keys, counted in the cache."""

from rest_framework.throttling import SimpleRateThrottle

from accounts.authentication import Principal


class AccountRateThrottle(SimpleRateThrottle):
    scope = "account"

    def get_cache_key(self, request, view):
        if not isinstance(request.user, Principal):
            return None  # Only authenticated calls are throttled; the rest get 401 anyway.
        return self.cache_format % {"scope": self.scope, "ident": request.user.account.pk}

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:  # Cache down: fail open, as the rendering limits do.
            return True
