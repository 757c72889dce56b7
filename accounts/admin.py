"""Admin for accounts: account managers switch entitlements here; every change is audited."""

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from .models import Account


@admin.register(Account)
class AccountAdmin(SimpleHistoryAdmin):
    list_display = ["name", "slug", "bg_remove_enabled", "created_at"]
    list_filter = ["bg_remove_enabled"]
    search_fields = ["name", "slug", "sources__slug"]
    prepopulated_fields = {"slug": ["name"]}
    history_list_display = ["bg_remove_enabled", "render_rate_limit", "bg_remove_rate_limit", "bg_remove_max_pending"]
    fieldsets = [
        (None, {"fields": ["name", "slug"]}),
        ("Background removal", {"fields": ["bg_remove_enabled"]}),
        ("Limits", {"fields": ["render_rate_limit", "bg_remove_rate_limit", "bg_remove_max_pending"]}),
    ]

    def get_prepopulated_fields(self, request, obj=None):
        # A read-only slug cannot be prepopulated (the admin would fail to render the form).
        return {} if "slug" in self.get_readonly_fields(request, obj) else super().get_prepopulated_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        # The slug names the tenant in URLs; only superusers rename it.
        if obj is not None and not request.user.is_superuser:
            return ["slug"]
        return []
