"""Rendering URLs on `{source}.{RENDER_DOMAIN}`: every path is an image of that source."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from .views import JobStatusView, render_view


@csrf_exempt
def _host_render(request, path):
    return render_view(request, source=request.render_source, path=path)


urlpatterns = [
    path("_/jobs/<uuid:job_id>", JobStatusView.as_view(), name="bg-remove-job"),
    path("<path:path>", _host_render, name="render-host"),
]
