"""Admin for the remove.bg API: credits per account; calls, uploads and submissions to look at."""

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from accounts.admin import HistoryRevertMixin
from removebg_api.credits import credits_left, free_calls_left
from removebg_api.improvements import improvement_delete
from removebg_api.models import Call, CreditAccount, Improvement
from rendering.store import render_purge
from sources.models import Upload


@admin.register(CreditAccount)
class CreditAccountAdmin(HistoryRevertMixin, SimpleHistoryAdmin):
    """Granting credits is a manager's change like an entitlement's: who, when, old → new on the
    History page. Empty credits: the account is unmetered (the default); a number meters it. What
    calls charged is not edited here (one atomic update per call)."""

    list_display = ["account", "metered", "credits", "balance", "free_calls"]
    search_fields = ["account__name", "account__slug"]
    autocomplete_fields = ["account"]
    fields = ["account", "credits", "free_calls", "balance", "free_calls_left"]
    readonly_fields = ["balance", "free_calls_left"]
    history_list_display = ["credits", "free_calls"]

    @admin.display(description="metered", boolean=True)
    def metered(self, obj):
        return obj.metered

    @admin.display(description="balance (granted − charged)")
    def balance(self, obj):
        left = credits_left(credit=obj)
        return "unmetered" if left is None else left

    @admin.display(description="free calls left this month")
    def free_calls_left(self, obj):
        return free_calls_left(credit=obj)


class _ReadOnly(admin.ModelAdmin):
    """Records of what happened: shown, never edited here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Call)
class CallAdmin(_ReadOnly):
    list_display = ["created_at", "account", "size", "credits", "free", "metered", "width", "height", "job"]
    list_filter = ["size", "free", "metered"]
    search_fields = ["account__slug", "path"]
    list_select_related = ["account"]


@admin.register(Upload)
class UploadAdmin(_ReadOnly):
    list_display = ["path", "source", "size", "width", "height", "created_at", "last_used_at"]
    search_fields = ["path", "source__slug", "source__account__slug"]
    list_select_related = ["source"]

    # A purge of the image: its cutouts and renders go with it (rendering/store.py).
    def delete_model(self, request, obj):
        render_purge(source=obj.source, path=obj.path)

    def delete_queryset(self, request, queryset):
        for upload in queryset.select_related("source"):
            render_purge(source=upload.source, path=upload.path)


@admin.register(Improvement)
class ImprovementAdmin(_ReadOnly):
    list_display = ["created_at", "account", "tag", "filename", "size"]
    search_fields = ["account__slug", "tag", "filename"]
    list_select_related = ["account"]

    # Through the service, so the stored image goes with the row.
    def delete_model(self, request, obj):
        improvement_delete(improvement=obj)

    def delete_queryset(self, request, queryset):
        for improvement in queryset:
            improvement_delete(improvement=improvement)
