"""API routes that answer with or without a trailing slash, listed (and reversed) once."""

from functools import partial

from django.urls.conf import _path
from django.urls.resolvers import RoutePattern


class SlashOptionalPattern(RoutePattern):
    """`path()`'s pattern, also matching the path with its trailing slash added or removed.

    Matched in place rather than redirected (APPEND_SLASH): a client that POSTs to `purge/` by
    habit must not have its body dropped by a redirect. `str()` and reversing give the route as
    written, so the OpenAPI schema and `reverse()` see one URL per route."""

    def match(self, path):
        found = super().match(path)
        if found is None and path:
            other = path[:-1] if path.endswith("/") else path + "/"
            found = super().match(other)
            if found is not None:
                _, args, kwargs = found
                found = "", args, kwargs
        return found


# `path()` itself, with the pattern above: for an endpoint, or an include() whose prefix then
# also answers without its slash (`/api/v1` is the index at `/api/v1/`). Django builds `path` the
# same way (`partial(_path, Pattern=RoutePattern)`).
slash_optional_path = partial(_path, Pattern=SlashOptionalPattern)
