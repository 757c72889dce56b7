"""Serves `{source}.{RENDER_DOMAIN}` hosts with the rendering URLconf."""

from django.conf import settings


class RenderHostMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        domain = settings.RENDER_DOMAIN
        if domain:
            host = request.get_host().split(":")[0].lower()
            suffix = "." + domain.lower()
            if host.endswith(suffix) and "." not in host[: -len(suffix)]:
                request.render_source = host[: -len(suffix)]
                request.urlconf = "rendering.host_urls"
        return self.get_response(request)
