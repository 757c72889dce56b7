"""Rendering URLs on `{source}.{RENDER_DOMAIN}`: every path is an image of that source."""

from django.urls import path

from .views import JobStatusView, RenderView


def _host_render(request, path):
    return RenderView.as_view()(request, source=request.render_source, path=path)


urlpatterns = [
    path("_/jobs/<uuid:job_id>", JobStatusView.as_view(), name="bg-remove-job"),
    path("<path:path>", _host_render, name="render-host"),
]
