"""Rendering URLs on the platform's own host: /render/{source}/{path}."""

from django.urls import path

from .views import JobStatusView, home, render_view

urlpatterns = [
    path("", home, name="home"),
    path("render/<str:source>/<path:path>", render_view, name="render"),
    path("_/jobs/<uuid:job_id>", JobStatusView.as_view(), name="bg-remove-job"),
]
