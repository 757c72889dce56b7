"""Admin for the remove.bg API: credits per account; calls, uploads and submissions to look at."""

from django.contrib import admin

from removebg_api.models import Call, CreditAccount, Improvement
from sources.models import Upload


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    list_display = ["account", "credits", "free_calls"]
    search_fields = ["account__name", "account__slug"]
    autocomplete_fields = ["account"]


class _ReadOnly(admin.ModelAdmin):
    """Records of what happened: shown, never edited here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Call)
class CallAdmin(_ReadOnly):
    list_display = ["created_at", "account", "size", "credits", "free", "width", "height", "job"]
    list_filter = ["size", "free"]
    search_fields = ["account__slug", "path"]
    list_select_related = ["account"]


@admin.register(Upload)
class UploadAdmin(_ReadOnly):
    list_display = ["path", "source", "size", "width", "height", "created_at", "last_used_at"]
    search_fields = ["path", "source__slug", "source__account__slug"]
    list_select_related = ["source"]


@admin.register(Improvement)
class ImprovementAdmin(_ReadOnly):
    list_display = ["created_at", "account", "tag", "filename", "size"]
    search_fields = ["account__slug", "tag", "filename"]
    list_select_related = ["account"]
