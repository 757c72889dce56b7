"""Playground URLs, below /playground/."""

from django.urls import path

from playground import views

urlpatterns = [
    path("", views.playground_page, name="playground"),
    path("sign-in", views.sign_in, name="playground-sign-in"),
    path("sign-out", views.sign_out, name="playground-sign-out"),
    path("sources", views.sources_view, name="playground-sources"),
    path("url", views.url_view, name="playground-url"),
    path("uploads", views.upload_view, name="playground-upload"),
    path("uploads/<slug:account>/<str:path>", views.upload_render_view, name="playground-upload-render"),
]
