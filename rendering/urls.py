"""Rendering URLs on the platform's own host: /render/{source}/{path}."""

from django.urls import path

from .views import JobStatusView, RenderView, home

urlpatterns = [
    path("", home, name="home"),
    path("render/<str:source>/<path:path>", RenderView.as_view(), name="render"),
    path("_/jobs/<uuid:job_id>", JobStatusView.as_view(), name="bg-remove-job"),
]
