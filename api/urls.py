"""The management API, version 1: every route a key can reach, and the schema that describes it.

Each route answers with or without a trailing slash (core/routing.py), and is listed once."""

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from accounts.apis import AccountApi, ApiKeyDetailApi, ApiKeyListApi
from api.apis import IndexApi, SchemaApi
from core.routing import slash_optional_path as path
from cutouts.apis import JobDetailApi, JobListApi
from rendering.apis import PrewarmApi, PurgeApi
from sources.apis import SourceDetailApi, SourceListApi, SourceTokenApi
from usage.apis import UsageApi
from webhooks.apis import WebhookDeliveryListApi, WebhookDetailApi, WebhookListApi

urlpatterns = [
    path("", IndexApi.as_view(), name="index"),
    path("account", AccountApi.as_view(), name="account"),
    path("keys", ApiKeyListApi.as_view(), name="keys"),
    path("keys/<int:key_id>", ApiKeyDetailApi.as_view(), name="key-detail"),
    path("sources", SourceListApi.as_view(), name="sources"),
    path("sources/<str:slug>", SourceDetailApi.as_view(), name="source-detail"),
    path("sources/<str:slug>/tokens", SourceTokenApi.as_view(), name="source-tokens"),
    path("jobs", JobListApi.as_view(), name="jobs"),
    path("jobs/<uuid:job_id>", JobDetailApi.as_view(), name="job-detail"),
    path("purge", PurgeApi.as_view(), name="purge"),
    path("prewarm", PrewarmApi.as_view(), name="prewarm"),
    path("usage", UsageApi.as_view(), name="usage"),
    path("webhooks", WebhookListApi.as_view(), name="webhooks"),
    path("webhooks/<int:webhook_id>", WebhookDetailApi.as_view(), name="webhook-detail"),
    path("webhooks/<int:webhook_id>/deliveries", WebhookDeliveryListApi.as_view(), name="webhook-deliveries"),
    path("schema/", SchemaApi.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema", template_name="api/redoc.html"), name="redoc"),
]
