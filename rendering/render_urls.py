"""URLs of the rendering handler (config/wsgi.py) for `/render/…`: one pattern to match, not the
whole site's. The names are those of rendering/urls.py, so `reverse` gives the same URLs."""

from django.urls import path

from .views import JobStatusView, render_view

urlpatterns = [
    path("render/<str:source>/<path:path>", render_view, name="render"),
    path("_/jobs/<uuid:job_id>", JobStatusView.as_view(), name="bg-remove-job"),
]

handler404 = "config.views.not_found"
handler500 = "config.views.internal_error"
