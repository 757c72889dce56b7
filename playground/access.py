"""Who uses the playground, for which accounts: an API key's holder, or an account manager."""

from dataclasses import dataclass

from django.utils import timezone

from accounts.models import Account, ApiKey
from accounts.services import ACCOUNT_MANAGERS_GROUP, api_key_authenticate
from core.errors import ForbiddenError, NotFoundError, ServiceError

# The session holds the key's id, never its secret: the secret is sent once, to sign in.
SESSION_KEY = "playground_api_key"
# A key signs in with `read` (it sees the account's sources, as GET /api/v1/sources does); it
# drops images into the account's uploads with `write` (as pre-warm starts jobs) or `removebg`
# (whose API keeps its images there).
SIGN_IN_SCOPE = ApiKey.Scope.READ
UPLOAD_SCOPES = {ApiKey.Scope.WRITE, ApiKey.Scope.REMOVEBG}
# What an account manager needs to see accounts and their sources in the admin.
MANAGER_PERMISSIONS = ("accounts.view_account", "sources.view_source")


class SignInRequiredError(ServiceError):
    status_code = 401
    code = "sign_in_required"
    default_message = "Sign in to the playground with an API key, or to the admin as an account manager."


class SignInError(ForbiddenError):
    code = "sign_in_refused"
    default_message = "The API key is unknown, revoked or expired."


class UploadForbiddenError(ForbiddenError):
    code = "upload_forbidden"
    default_message = "Dropping an image needs a key with the `write` or `removebg` scope."


class AccountNotFoundError(NotFoundError):
    code = "account_not_found"
    # 404 whether it exists or not: nobody learns another account's name here.
    default_message = "No such account."


@dataclass(frozen=True)
class Visitor:
    """A signed-in user of the playground: by an API key (its account only), or a staff user in
    the "Account managers" group or a superuser (the accounts the admin shows them)."""

    api_key: ApiKey | None = None
    user: object = None

    @property
    def label(self) -> str:
        return f"API key {self.api_key.prefix}… of {self.api_key.account.slug}" if self.api_key else self.user.get_username()

    def accounts(self):
        if self.api_key is not None:
            return Account.objects.filter(pk=self.api_key.account_id)
        return Account.objects.order_by("name")

    def account(self, slug: str | None) -> Account:
        account = self.accounts().filter(slug=slug).first() if slug else None
        if account is None:
            raise AccountNotFoundError()
        return account

    @property
    def may_upload(self) -> bool:
        return self.api_key is None or bool(UPLOAD_SCOPES & set(self.api_key.scopes))


def api_key_sign_in(*, key: str) -> ApiKey:
    """The live key for this secret, if it may use the playground; SignInError otherwise."""
    api_key = api_key_authenticate(key=key.strip()) if key and len(key) <= 200 else None
    if api_key is None:
        raise SignInError()
    if SIGN_IN_SCOPE not in api_key.scopes:
        raise SignInError(f"The playground needs a key with the `{SIGN_IN_SCOPE}` scope; this one has "
                          f"{', '.join(api_key.scopes) or 'none'}.")
    return api_key


def visitor_for(request) -> Visitor | None:
    """Who this request is: the key its session signed in with (looked up again, so a key revoked
    or expired since stops working at once), else an account manager signed in to the admin."""
    key_id = request.session.get(SESSION_KEY)
    if key_id is not None:
        api_key = ApiKey.objects.select_related("account").filter(pk=key_id).first()
        now = timezone.now()
        if (api_key is not None and api_key.revoked_at is None and SIGN_IN_SCOPE in api_key.scopes
                and (api_key.expires_at is None or api_key.expires_at > now)):
            return Visitor(api_key=api_key)
        del request.session[SESSION_KEY]
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active and user.is_staff and (
            user.is_superuser or (user.groups.filter(name=ACCOUNT_MANAGERS_GROUP).exists()
                                  and user.has_perms(MANAGER_PERMISSIONS))):
        return Visitor(user=user)
    return None


def visitor_required(request) -> Visitor:
    visitor = visitor_for(request)
    if visitor is None:
        raise SignInRequiredError()
    return visitor
