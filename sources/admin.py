"""Admin for sources: account managers set background removal to inherit, on or off."""

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from accounts.admin import HistoryRevertMixin
from sources.models import Source
from sources.selectors import source_bg_remove_enabled
from sources.services import ORIGIN_FIELDS

# Secrets: only superusers see them; account managers never do.
SECRET_FIELDS = {"s3_secret_access_key", "secure_tokens"}


@admin.register(Source)
class SourceAdmin(HistoryRevertMixin, SimpleHistoryAdmin):
    list_display = ["slug", "account", "kind", "bg_remove", "bg_remove_effective"]
    list_filter = ["kind", "bg_remove"]
    search_fields = ["slug", "account__name", "account__slug"]
    list_select_related = ["account"]
    history_list_display = ["bg_remove", "bg_remove_model", "bg_remove_refinement"]
    fieldsets = [
        (None, {"fields": ["account", "slug", "kind"]}),
        ("Origin", {"fields": ORIGIN_FIELDS[3:11]}),
        ("Signed URLs", {"fields": ["require_signature", "secure_tokens"]}),
        ("Rendering", {"fields": ["bg_remove", "bg_remove_model", "bg_remove_refinement", "cache_max_age"]}),
    ]

    @admin.display(boolean=True, description="bg-remove in effect")
    def bg_remove_effective(self, obj):
        return source_bg_remove_enabled(source=obj)

    def get_fieldsets(self, request, obj=None):
        if request.user.is_superuser:
            return self.fieldsets
        # Managers never see origin credentials.
        return [(name, {"fields": [f for f in opts["fields"] if f not in SECRET_FIELDS]})
                for name, opts in self.fieldsets]

    def get_readonly_fields(self, request, obj=None):
        # Account managers switch entitlements; where images come from is the owner's business.
        if obj is not None and not request.user.is_superuser:
            return ORIGIN_FIELDS
        return []
