"""URL wiring: health and metrics, admin, management API, the remove.bg API, rendering."""

from django.contrib import admin
from django.urls import include, path

from core import health
from core.routing import slash_optional_path

admin.site.site_header = "Cutout administration"
admin.site.site_title = "Cutout"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    slash_optional_path("api/v1/", include(("api.urls", "api"), namespace="api")),
    # remove.bg's API (its base URL is https://api.remove.bg/v1.0): before the site's catch-all.
    path("v1.0/", include(("removebg_api.urls", "removebg"), namespace="removebg")),
    path("playground/", include("playground.urls")),
    path("", include("rendering.urls")),
]

handler404 = "core.views.not_found"
handler500 = "core.views.internal_error"
