"""Rendering URLs on the platform's own host: the home page, and /render/{source}/{path}."""

from django.urls import path

from . import render_urls
from .views import home

urlpatterns = [
    path("", home, name="home"),
    *render_urls.urlpatterns,  # The same patterns the rendering handler resolves alone.
]
