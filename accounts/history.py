"""Who made a change, for the audit history: a signed-in person; API calls record no user."""

from django.contrib.auth import get_user_model


def history_user(instance=None, request=None, **kwargs):
    user = getattr(request, "user", None) if request is not None else None
    # DRF puts its own principal on the request for API-key calls; only people are recorded.
    return user if isinstance(user, get_user_model()) and user.is_authenticated else None
