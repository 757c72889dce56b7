"""Admin for background-removal jobs: read-only, for seeing states, times and reasons."""

from django.contrib import admin

from .models import BgRemoveJob


@admin.register(BgRemoveJob)
class BgRemoveJobAdmin(admin.ModelAdmin):
    list_display = ["path", "source", "model", "status", "created_at", "duration_seconds", "error_code"]
    list_filter = ["status", "model"]
    search_fields = ["path", "source__slug", "source__account__name"]
    list_select_related = ["source"]
    readonly_fields = [f.name for f in BgRemoveJob._meta.fields] + ["duration_seconds"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
