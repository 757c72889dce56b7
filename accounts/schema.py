"""OpenAPI descriptions of the API's authentication, for drf-spectacular."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from accounts.authentication import ACCOUNT_HEADER


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer ck_…`."}


class StaffSessionScheme(OpenApiAuthenticationExtension):
    """Both parts together (an AND): the admin's session cookie, and the account it acts on.

    In Swagger UI, "Authorize" → `account` sets the header on every "Try it out" call; the
    browser sends the cookie, and the page the CSRF token."""

    target_class = "accounts.authentication.StaffSessionAuthentication"
    name = ["staffSession", "account"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "cookie", "name": "sessionid",
             "description": "Signed in to the admin (/admin/) as an account manager or a superuser. Writes also "
                            "need the CSRF token (`X-CSRFToken`), which Swagger UI sends."},
            {"type": "apiKey", "in": "header", "name": ACCOUNT_HEADER,
             "description": "With an admin session: the slug of the account to act on (or `?account=<slug>`). "
                            "A key always acts on its own account: naming another is refused."},
        ]
