"""Admin for background-removal jobs: read-only, with a retry for failed ones and the cutout itself."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from core.storage import storage_missing
from cutouts.models import BgRemoveJob
from cutouts.queueing import bg_remove_job_retry

PATH_SHOWN = 24  # Characters of a job's path in the list (its end: the file name); the whole path is its tooltip.


def seconds_readable(value: float | None) -> str:
    """A duration as people read it: < 1 ms, 840 ms, 2.31 s, 3 min 05 s; "–" when there is none."""
    if value is None:
        return "–"
    if value < 0.001:
        return "< 1 ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"


def job_cutout_url(job: BgRemoveJob) -> str:
    """The admin's own URL of a done job's stored cutout (staff with view permission on jobs)."""
    return reverse("admin:cutouts_bgremovejob_cutout", args=[job.pk])


@admin.register(BgRemoveJob)
class BgRemoveJobAdmin(admin.ModelAdmin):
    # Six columns that fit 1280 px beside the filters: the error code goes into the status cell,
    # and dates are short (the full date is on the job's page).
    list_display = ["short_path", "source", "status_label", "model", "created", "took"]
    list_filter = ["status", "model"]
    search_fields = ["path", "source__slug", "source__account__name"]
    list_select_related = ["source"]
    actions = ["retry"]

    class Media:
        css = {"all": ["cutouts/admin/jobs.css"]}

    fieldsets = [
        (None, {"fields": ["source", "path", "status_label", "model", "refinement", "error_message", "note"]}),
        ("Timings", {"fields": ["created_at", "started_at", "finished_at", "fetch_time", "inference_time",
                                "total_time"]}),
        ("Details", {"classes": ["collapse"], "fields": [
            "id", "width", "height", "origin_version", "cutout_name", "enqueued_at", "attempts", "crashes",
            "retries", "inferences", "run_after", "lease_expires_at", "claimed_by", "error_status", "error_code",
        ]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [name for _, opts in self.get_fieldsets(request, obj) for name in opts["fields"]]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        cutout = path("<uuid:job_id>/cutout.png", self.admin_site.admin_view(self.cutout_view),
                      name="cutouts_bgremovejob_cutout")
        return [cutout, *super().get_urls()]

    def cutout_view(self, request, job_id):
        """The stored cutout of a done job, read from storage: exactly what this job made (its model
        and refinement), with no render, usage count or entitlement on the customer's account."""
        job = BgRemoveJob.objects.filter(pk=job_id).first()
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        if job is None or job.status != BgRemoveJob.Status.DONE or not job.cutout_name:
            raise Http404("No cutout for this job.")
        try:
            fh = default_storage.open(job.cutout_name, "rb")
        except Exception as exc:
            if storage_missing(exc):
                raise Http404("The cutout is no longer stored (purged).") from None
            raise
        response = FileResponse(fh, content_type="image/png")
        # Staff only: never kept by a shared cache.
        response["Cache-Control"] = "private, max-age=300"
        return response

    @admin.display(description="path", ordering="path")
    def short_path(self, obj):
        shown = obj.path if len(obj.path) <= PATH_SHOWN else f"…{obj.path[-(PATH_SHOWN - 1):]}"
        return format_html('<span class="job-path" title="{}">{}</span>', obj.path, shown)

    @admin.display(description="status", ordering="status")
    def status_label(self, obj):
        text = obj.status
        if obj.status == BgRemoveJob.Status.FAILED and (obj.error_code or obj.error_status):
            text = f"{obj.status} {obj.error_status or obj.error_code}"
        return format_html('<span class="job-status job-status-{}" title="{}">{}</span>',
                           obj.status, obj.error_code or obj.status, text)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        local = timezone.localtime(obj.created_at)
        today = timezone.localtime().date()
        return local.strftime("%H:%M:%S" if local.date() == today else "%b %d %H:%M")

    @admin.display(description="took")
    def took(self, obj):
        return seconds_readable(obj.duration_seconds)

    @admin.display(description="fetching the origin")
    def fetch_time(self, obj):
        return seconds_readable(obj.fetch_seconds)

    @admin.display(description="the model and refinement")
    def inference_time(self, obj):
        return seconds_readable(obj.inference_seconds)

    @admin.display(description="start to finish")
    def total_time(self, obj):
        return seconds_readable(obj.duration_seconds)

    @admin.action(description="Retry the selected failed jobs", permissions=["view"])
    def retry(self, request, queryset):
        retried = sum(bg_remove_job_retry(job=job) for job in queryset.filter(status=BgRemoveJob.Status.FAILED))
        messages.success(request, f"{retried} job(s) queued again.")
