"""Rendering URLs: the site's (the home page and /render/…), and the two URLconfs that rendering
requests resolve against alone (rendering/wsgi.py, rendering/hosts.py).

The two are classes, which Django accepts wherever it takes a URLconf module: one module then
holds every rendering route, and each name is declared once, so `reverse` gives the same URLs.
"""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from cutouts.views import JobStatusView
from rendering.views import home, render_view

_job_status = path("_/jobs/<uuid:job_id>", JobStatusView.as_view(), name="bg-remove-job")
render_route = path("render/<str:source>/<path:path>", render_view, name="render")

urlpatterns = [path("", home, name="home"), render_route, _job_status]


@csrf_exempt
def _host_render(request, path):
    return render_view(request, source=request.render_source, path=path)


class RenderPathUrls:
    """`/render/…` and job status, for the rendering handler: one pattern to match, not the site's."""

    urlpatterns = [render_route, _job_status]
    handler404 = "core.views.not_found"
    handler500 = "core.views.internal_error"


class SourceHostUrls:
    """`{source}.{RENDER_DOMAIN}`: every path is an image of that source."""

    urlpatterns = [_job_status, path("<path:path>", _host_render, name="render-host")]
    handler404 = "core.views.not_found"
    handler500 = "core.views.internal_error"
