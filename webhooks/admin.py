"""Admin for webhooks: read-only (an account creates its own through the API)."""

from django.contrib import admin

from webhooks.models import Webhook


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "account", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "account__name", "account__slug"]
    exclude = ["secret"]
    readonly_fields = ["account", "url", "events", "created_at"]

    def has_add_permission(self, request):
        return False
