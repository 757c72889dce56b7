"""The account and source pages, with what only the apps above them know: usage, recent jobs,
a preview, and purge.

They are extended here, the highest app, not in accounts/ or sources/, so dependencies keep
pointing one way (rendering → usage, cutouts → sources → accounts).
"""

import math
from datetime import date, timedelta
from html import escape
from urllib.parse import quote, urlencode

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from accounts.admin import AccountAdmin
from accounts.models import Account
from cutouts.admin import BgRemoveJobAdmin, job_cutout_url, seconds_readable
from cutouts.models import BgRemoveJob
from cutouts.selectors import job_list_for
from rendering.signing import url_signed
from rendering.store import render_purge
from sources.admin import SourceAdmin
from sources.models import Source
from usage.selectors import DayUsage, usage_days_for

RECENT_JOBS = 15
USAGE_DAYS = 30


def _jobs_table(jobs) -> str:
    if not jobs:
        return "No background-removal jobs yet."
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (job.created_at.strftime("%Y-%m-%d %H:%M"), job.source.slug, job.path, job.status,
             seconds_readable(job.duration_seconds),
             job.error_message or job.note or "")
            for job in jobs
        ),
    )
    return format_html(
        '<table class="recent-jobs"><thead><tr><th>created</th><th>source</th><th>path</th><th>status</th>'
        "<th>duration</th><th>reason</th></tr></thead><tbody>{}</tbody></table>", rows,
    )


# The usage chart: server-side SVG (no JavaScript, no chart library to serve), two panels on one
# time axis, since counts and bytes share no scale: renders and cutouts per day, bytes per day.
CHART_WIDTH, PANEL_HEIGHT = 700, 130
CHART_LEFT, CHART_RIGHT, CHART_TOP = 64, 12, 58
PANEL_GAP = 44
SERIES = [("renders", "Renders", "#417690"), ("cutouts", "Cutouts", "#e08e0b"), ("bytes_served", "Bytes served", "#5b8c5a")]


def _nice_step(top: float, ticks: int = 4, *, whole: bool) -> float:
    """A round step (1, 2 or 5 × a power of ten) so that a few of them cover `top`."""
    raw = max(top, 1e-9) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return max(step, 1) if whole else step


def bytes_readable(value: float) -> str:
    """Decimal units, as disks and bandwidth bills count: 0 B, 950 B, 1.2 kB, 34 MB, 1.5 GB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 or value == int(value) else f"{value:.1f} {unit}"
        value /= 1000
    return ""


def _count_readable(value: float) -> str:
    return f"{value:,.0f}"


def _panel(*, top: float, days, series, label: str, readable) -> tuple[list[str], float]:
    """One panel's SVG parts: gridlines with tick labels, the y-axis label, and a bar per day and
    series, each bar with data-* attributes (what it shows) and a <title> (what a reader hears)."""
    width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    largest = max((getattr(u, key) for _, u in days for key, _, _ in series), default=0)
    step = _nice_step(largest, whole=True)
    axis_max = step * max(math.ceil(largest / step), 1)
    parts = [f'<g class="panel" data-axis-max="{axis_max:g}" data-height="{PANEL_HEIGHT}" data-top="{top:g}">']
    tick = 0.0
    while tick <= axis_max + 1e-9:
        y = top + PANEL_HEIGHT - tick / axis_max * PANEL_HEIGHT
        parts.append(f'<line class="grid" x1="{CHART_LEFT}" x2="{CHART_LEFT + width}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{"#888" if tick == 0 else "#e3e3e3"}" stroke-width="1"/>')
        parts.append(f'<text class="tick" x="{CHART_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(readable(tick))}</text>")
        tick += step
    middle = top + PANEL_HEIGHT / 2
    parts.append(f'<text class="axis-label" x="14" y="{middle:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {middle:.1f})">{escape(label)}</text>')
    slot = width / max(len(days), 1)
    bar = max(slot * 0.8 / len(series), 1)
    for i, (day, usage) in enumerate(days):
        for j, (key, name, colour) in enumerate(series):
            value = getattr(usage, key)
            height = value / axis_max * PANEL_HEIGHT
            x = CHART_LEFT + i * slot + slot * 0.1 + j * bar
            shown = bytes_readable(value) if key == "bytes_served" else f"{value:,} {name.lower()}"
            parts.append(
                f'<rect class="bar" data-series="{key}" data-day="{day.isoformat()}" data-value="{value}" '
                f'x="{x:.2f}" y="{top + PANEL_HEIGHT - height:.2f}" width="{bar:.2f}" height="{height:.2f}" '
                f'fill="{colour}"><title>{escape(day.strftime("%b %d"))}: {escape(shown)}</title></rect>'
            )
    parts.append("</g>")
    return parts, slot


def usage_chart_svg(days: list[tuple[date, DayUsage]]) -> str:
    """The labelled chart of `days` (oldest first): title, legend, axes, tick labels, a text
    description for screen readers, every value in its bar's <title>."""
    counts_top = CHART_TOP
    bytes_top = counts_top + PANEL_HEIGHT + PANEL_GAP
    height = bytes_top + PANEL_HEIGHT + 40
    totals = {key: sum(getattr(u, key) for _, u in days) for key, _, _ in SERIES}
    first, last = (days[0][0], days[-1][0]) if days else (None, None)
    title = f"Usage per day, {first:%b %d} to {last:%b %d, %Y} (UTC)" if days else "Usage per day"
    description = (f"{len(days)} days: {totals['renders']:,} renders, {totals['cutouts']:,} cutouts made, "
                   f"{bytes_readable(totals['bytes_served'])} served. Renders and cutouts are bars in the "
                   "upper panel, bytes served in the lower panel.")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}" style="max-width:100%;height:auto" role="img" '
        'aria-labelledby="usage-chart-title usage-chart-desc" '
        'font-family="sans-serif" font-size="11" fill="#333">',
        f'<title id="usage-chart-title">{escape(title)}</title>',
        f'<desc id="usage-chart-desc">{escape(description)}</desc>',
        f'<text class="chart-title" x="{CHART_LEFT}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    x = CHART_LEFT
    for key, name, colour in SERIES:
        label = f"{name} ({bytes_readable(totals[key]) if key == 'bytes_served' else f'{totals[key]:,}'})"
        parts.append(f'<g class="legend-item" data-series="{key}"><rect x="{x}" y="30" width="12" height="12" '
                     f'fill="{colour}"/><text x="{x + 17}" y="40">{escape(label)}</text></g>')
        x += 34 + 7 * len(label)
    counts, slot = _panel(top=counts_top, days=days, series=SERIES[:2], label="renders, cutouts per day",
                          readable=_count_readable)
    sizes, _ = _panel(top=bytes_top, days=days, series=SERIES[2:], label="bytes per day", readable=bytes_readable)
    parts += counts + sizes
    # Dates under each panel: every 5th day and the last, so labels never overlap.
    for i, (day, _) in enumerate(days):
        if i % 5 and i != len(days) - 1:
            continue
        cx = CHART_LEFT + (i + 0.5) * slot
        for panel_top in (counts_top, bytes_top):
            parts.append(f'<text class="day" x="{cx:.1f}" y="{panel_top + PANEL_HEIGHT + 15}" '
                         f'text-anchor="middle">{escape(day.strftime("%b %d"))}</text>')
    parts.append(f'<line x1="{CHART_LEFT}" x2="{CHART_LEFT}" y1="{counts_top}" y2="{counts_top + PANEL_HEIGHT}" '
                 f'stroke="#888"/><line x1="{CHART_LEFT}" x2="{CHART_LEFT}" y1="{bytes_top}" '
                 f'y2="{bytes_top + PANEL_HEIGHT}" stroke="#888"/>')
    parts.append("</svg>")
    return "".join(parts)



CHECKERBOARD = "background:repeating-conic-gradient(#ccc 0 25%,#fff 0 50%) 0 0/16px 16px"


def job_render_url(job: BgRemoveJob, **params) -> str:
    """The render URL of a job's image (`bg-remove`: its cutout, by its model), signed for a
    source that requires signatures: the admin signs it server-side with the source's newest token."""
    query = urlencode(params)
    return url_signed(source=job.source, url=f"/render/{job.source.slug}/{quote(job.path)}{'?' if query else ''}{query}")


class JobPicturesAdmin(BgRemoveJobAdmin):
    """A job's page with its origin and cutout side by side, and its render URL."""

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(name, dict(opts)) for name, opts in super().get_fieldsets(request, obj)]
        if obj is not None:
            fieldsets.insert(0, ("Origin and cutout", {"fields": ["pictures", "render_url"]}))
        return fieldsets

    @admin.display(description="Origin and cutout (on a checkerboard)")
    def pictures(self, obj):
        if obj.source.kind == Source.Kind.UPLOADS:
            origin = format_html("<p>{}</p>", "Uploaded through the remove.bg API: uploads have no render URL.")
        else:
            origin = format_html('<figure><img src="{}" alt="origin: {}" width="360" loading="lazy">'
                                 "<figcaption>origin</figcaption></figure>",
                                 job_render_url(obj, w=720), obj.path)
        if obj.status == BgRemoveJob.Status.DONE and obj.cutout_name:
            cutout = format_html(
                '<figure><img src="{}" alt="cutout: {}" width="360" loading="lazy" style="{}">'
                "<figcaption>cutout ({} × {} px, {})</figcaption></figure>",
                job_cutout_url(obj), obj.path, CHECKERBOARD, obj.width, obj.height, obj.model,
            )
        else:
            cutout = format_html("<p>No cutout: the job is {}.</p>", obj.status)
        return format_html('<div class="job-pictures">{}{}</div>', origin, cutout)

    @admin.display(description="render URL")
    def render_url(self, obj):
        if obj.source.kind == Source.Kind.UPLOADS:
            return "– (remove.bg API uploads are served by that API)"
        url = job_render_url(obj, **{"bg-remove": "true", "bg-remove-model": obj.model})
        link = format_html('<a class="job-render-url" href="{}" target="_blank" rel="noopener">{}</a>', url, url)
        if obj.source.bg_remove_refinement != obj.refinement:
            return format_html("{} <br><small>The source now refines edges with {}, this job used {}: the URL "
                               "makes a new cutout.</small>", link, obj.source.bg_remove_refinement, obj.refinement)
        return link


class AccountActivityAdmin(AccountAdmin):
    readonly_fields = ["usage_last_30_days", "recent_jobs"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.append(("Activity", {"fields": ["usage_last_30_days", "recent_jobs"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "usage_last_30_days", "recent_jobs"]

    @admin.display(description="Usage (30 days)")
    def usage_last_30_days(self, obj):
        since = timezone.now().date() - timedelta(days=USAGE_DAYS - 1)
        per_day = usage_days_for(account=obj, since=since)
        days = [(since + timedelta(days=i), per_day.get(since + timedelta(days=i), DayUsage())) for i in range(USAGE_DAYS)]
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (day.isoformat(), f"{u.renders:,}", f"{u.cutouts:,}", bytes_readable(u.bytes_served)) for day, u in days
        ))
        # The SVG is built from numbers and escaped text only (usage_chart_svg).
        return format_html(
            '<div class="usage-chart-wrap">{}</div><details class="usage-table"><summary>The numbers</summary>'
            "<table><thead><tr><th>day (UTC)</th><th>renders</th><th>cutouts</th><th>bytes served</th></tr>"
            "</thead><tbody>{}</tbody></table></details>",
            mark_safe(usage_chart_svg(days)), rows,
        )

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
admin.site.unregister(BgRemoveJob)
admin.site.register(BgRemoveJob, JobPicturesAdmin)
