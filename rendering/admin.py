"""The account and source pages, with what only the apps above them know: usage, recent jobs,
a preview, and purge.

They are extended here, the highest app, not in accounts/ or sources/, so dependencies keep
pointing one way (rendering → usage, cutouts → sources → accounts).
"""

from datetime import timedelta
from urllib.parse import quote

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.admin import AccountAdmin
from accounts.models import Account
from cutouts.models import BgRemoveJob
from cutouts.selectors import job_list_for
from rendering.signing import url_signed
from rendering.store import render_purge
from sources.admin import SourceAdmin
from sources.models import Source
from usage.selectors import renders_per_day_for

RECENT_JOBS = 15
USAGE_DAYS = 30


def _jobs_table(jobs) -> str:
    if not jobs:
        return "No background-removal jobs yet."
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (job.created_at.strftime("%Y-%m-%d %H:%M"), job.source.slug, job.path, job.status,
             f"{job.duration_seconds:.2f} s" if job.duration_seconds is not None else "–",
             job.error_message or job.note or "")
            for job in jobs
        ),
    )
    return format_html(
        '<table class="recent-jobs"><thead><tr><th>created</th><th>source</th><th>path</th><th>status</th>'
        "<th>duration</th><th>reason</th></tr></thead><tbody>{}</tbody></table>", rows,
    )


def _sparkline(values: list[int], *, width=240, height=36) -> str:
    """A small inline SVG of daily values; no JavaScript, no external chart library."""
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values))
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        '<polyline fill="none" stroke="#417690" stroke-width="2" points="{}"/></svg>',
        width, height, width, height, f"renders per day, last {len(values)} days, max {top}", points,
    )


class AccountActivityAdmin(AccountAdmin):
    readonly_fields = ["usage_last_30_days", "recent_jobs"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.append(("Activity", {"fields": ["usage_last_30_days", "recent_jobs"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "usage_last_30_days", "recent_jobs"]

    @admin.display(description="Renders per day (30 days)")
    def usage_last_30_days(self, obj):
        today = timezone.now().date()
        since = today - timedelta(days=USAGE_DAYS - 1)
        per_day = renders_per_day_for(account=obj, since=since)
        values = [per_day.get(since + timedelta(days=i), 0) for i in range(USAGE_DAYS)]
        return format_html("{} <span>{} renders in 30 days</span>", _sparkline(values), sum(values))

    @admin.display(description="Recent background-removal jobs")
    def recent_jobs(self, obj):
        jobs = job_list_for(account=obj)[:RECENT_JOBS]
        return _jobs_table(list(jobs))


class SourceRenderAdmin(SourceAdmin):
    actions = ["purge_cache"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.insert(1, ("Preview", {"fields": ["preview"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "preview"]

    @admin.display(description="Origin and cutout")
    def preview(self, obj):
        job = BgRemoveJob.objects.filter(source=obj, status=BgRemoveJob.Status.DONE).order_by("-finished_at").first()
        if job is None:
            return "No cutout yet: the first request with ?bg-remove=true makes one."
        base = f"/render/{obj.slug}/{quote(job.path)}"
        original = url_signed(source=obj, url=f"{base}?w=240")
        cutout = url_signed(source=obj, url=f"{base}?bg-remove=true&w=240")
        url = url_signed(source=obj, url=f"{base}?bg-remove=true")
        return format_html(
            '<div class="cutout-preview" style="display:flex;gap:12px;align-items:flex-start">'
            '<img src="{}" alt="origin" width="240">'
            '<img src="{}" alt="cutout" width="240" style="background:repeating-conic-gradient(#ccc 0 25%,#fff 0 50%) 0 0/16px 16px">'
            "</div>"
            '<p><input type="text" readonly value="{}" size="70" id="cutout-url" onclick="this.select()"> '
            '<button type="button" onclick="navigator.clipboard.writeText(document.getElementById(\'cutout-url\').value)">'
            "Copy URL</button></p>",
            original, cutout, url,
        )

    @admin.action(description="Purge the cache of the selected sources", permissions=["change"])
    def purge_cache(self, request, queryset):
        for source in queryset:
            result = render_purge(source=source)
            messages.success(request, f"{source.slug}: removed {result.renders} renders and {result.cutouts} cutouts.")


admin.site.unregister(Account)
admin.site.register(Account, AccountActivityAdmin)
admin.site.unregister(Source)
admin.site.register(Source, SourceRenderAdmin)
