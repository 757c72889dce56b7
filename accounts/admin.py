"""Admin for accounts and API keys: account managers switch entitlements here; all audited."""

from django import forms
from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from .models import Account, ApiKey
from .services import api_key_create, api_key_revoke


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


class ApiKeyAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple,
                                       initial=["read"])

    class Meta:
        model = ApiKey
        fields = ["account", "name", "scopes", "expires_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(SimpleHistoryAdmin):
    """Keys are created through the service (the secret is shown once) and revoked, never edited."""

    list_display = ["__str__", "account", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["account"]
    search_fields = ["name", "prefix", "account__name", "account__slug"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["account", "name", "scopes", "expires_at"]
        return ["account", "name", "prefix", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return
        api_key, secret = api_key_create(account=obj.account, name=obj.name, scopes=form.cleaned_data["scopes"],
                                         expires_at=obj.expires_at)
        obj.pk = api_key.pk
        obj.refresh_from_db()
        messages.warning(request, f"The new API key, shown only this once: {secret}")

    def has_delete_permission(self, request, obj=None):
        return False  # Revoke instead, so the audit trail keeps the key.

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
        messages.success(request, "Revoked.")
