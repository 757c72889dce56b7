"""Serves `{source}.{RENDER_DOMAIN}` hosts with the rendering URLconf."""

from django.conf import settings


def render_host_source(host: str) -> str | None:
    """The source slug a `{source}.{RENDER_DOMAIN}` host names, or None for any other host."""
    domain = settings.RENDER_DOMAIN
    if not domain:
        return None
    host = host.rsplit(":", 1)[0].lower() if not host.endswith("]") else host.lower()
    suffix = "." + domain.lower()
    if host.endswith(suffix) and "." not in host[: -len(suffix)] and len(host) > len(suffix):
        return host[: -len(suffix)]
    return None


class RenderHostMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        slug = render_host_source(request.get_host()) if settings.RENDER_DOMAIN else None
        if slug is not None:
            request.render_source = slug
            request.urlconf = "rendering.host_urls"
        return self.get_response(request)
