"""remove.bg's paths, below /v1.0/ (config/urls.py), as its clients call them (a trailing slash too)."""

from core.routing import slash_optional_path as path
from removebg_api.views import account_view, improve_view, removebg_view

urlpatterns = [
    path("removebg", removebg_view, name="removebg"),
    path("account", account_view, name="account"),
    path("improve", improve_view, name="improve"),
]
