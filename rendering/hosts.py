"""Routes `{source}.{RENDER_DOMAIN}` hosts to their URLconf (rendering.urls.SourceHostUrls)."""

from django.conf import settings

from rendering.urls import SourceHostUrls
from sources.addresses import source_slug_for_host


class RenderHostMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        slug = source_slug_for_host(request.get_host()) if settings.RENDER_DOMAIN else None
        if slug is not None:
            request.render_source = slug
            request.urlconf = SourceHostUrls
            request.json_errors = True
        return self.get_response(request)
