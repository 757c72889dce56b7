"""Admin for background-removal jobs: read-only, with a retry for failed ones."""

from django.contrib import admin, messages

from cutouts.models import BgRemoveJob
from cutouts.queueing import bg_remove_job_retry


@admin.register(BgRemoveJob)
class BgRemoveJobAdmin(admin.ModelAdmin):
    list_display = ["path", "source", "model", "status", "created_at", "duration_seconds", "error_code"]
    list_filter = ["status", "model"]
    search_fields = ["path", "source__slug", "source__account__name"]
    list_select_related = ["source"]
    readonly_fields = [f.name for f in BgRemoveJob._meta.fields] + ["duration_seconds"]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Retry the selected failed jobs", permissions=["view"])
    def retry(self, request, queryset):
        retried = sum(bg_remove_job_retry(job=job) for job in queryset.filter(status=BgRemoveJob.Status.FAILED))
        messages.success(request, f"{retried} job(s) queued again.")
