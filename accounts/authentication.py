"""API authentication: `Authorization: Bearer <key>`, or a staff session naming an account."""

from dataclasses import dataclass

from rest_framework import authentication, exceptions

from accounts.api_rules import session_scopes
from accounts.models import Account, ApiKey
from accounts.services import api_key_authenticate

# How a staff session names the account it acts on (or `?account=<slug>`).
ACCOUNT_HEADER = "X-Account"
NOT_AUTHENTICATED = (
    "Send an API key (`Authorization: Bearer <key>`), or sign in to the admin (/admin/) as an account manager "
    "and name the account with `?account=<slug>` or an `X-Account` header."
)


def account_named(request) -> str | None:
    """The account slug a request names (`?account=` first, then `X-Account`), if any."""
    return request.query_params.get("account") or request.headers.get(ACCOUNT_HEADER) or None


@dataclass(frozen=True)
class Principal:
    """Who is calling, for which account, with which scopes. DRF's `request.user`."""

    account: Account
    scopes: frozenset
    api_key: ApiKey | None = None
    user: object = None

    # DRF and Django look for these on request.user.
    is_authenticated = True
    is_active = True

    @property
    def is_staff(self):
        return bool(self.user is not None and self.user.is_staff)

    @property
    def pk(self):
        return self.api_key.pk if self.api_key else getattr(self.user, "pk", None)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        # The scheme name is case-insensitive (RFC 9110, 11.1): `bearer` and `BEARER` work too.
        if not header or header[0].lower() != self.keyword.lower():
            return None  # Not ours: another scheme, or none (then 401).
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be `Bearer <key>`.")
        api_key = api_key_authenticate(key=header[1])
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is unknown, revoked or expired.")
        named = account_named(request)
        if named is not None and named != api_key.account.slug:
            # Never ignored in silence: a client that believes it acts on another account learns it does not.
            raise exceptions.PermissionDenied(
                f"An API key acts on its own account only, and this one's is not `{named}`: "
                "drop `account`, or use that account's key.")
        return Principal(account=api_key.account, scopes=frozenset(api_key.scopes), api_key=api_key), api_key

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) without credentials.
        return 'Bearer realm="api"'


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """Staff logged into the admin use the API for the account named by `?account=` (or `X-Account`).

    DRF's SessionAuthentication underneath: an active user only, and the CSRF token on every
    unsafe method. A session's scopes are those its Django permissions cover in full
    (accounts/api_rules.py); HasScope checks the permission of each route, so a staff user
    without permissions gets 403."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        if not user.is_staff:
            raise exceptions.AuthenticationFailed(
                f"Signed in as `{user.get_username()}`, who is not staff: use an API key "
                "(`Authorization: Bearer <key>`).")
        slug = account_named(request)
        if slug is None:
            raise exceptions.AuthenticationFailed(
                "A staff session names the account it acts on: add `?account=<slug>` or an `X-Account` header "
                "(in the API docs: Authorize → account).")
        account = Account.objects.filter(slug=slug).first()
        if account is None:
            raise exceptions.AuthenticationFailed(f"No account has the slug `{slug}`.")
        return Principal(account=account, scopes=session_scopes(user), user=user), None
