"""Admin for accounts and API keys: account managers switch entitlements here; all audited."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from simple_history.admin import SimpleHistoryAdmin
from simple_history.utils import get_history_model_for_model

from accounts.models import Account, ApiKey
from accounts.services import api_key_create, api_key_revoke


class HistoryRevertMixin:
    """A history "Revert" changes only what this user may change on the object's change page.

    SimpleHistoryAdmin saves the whole historical record, read-only fields included (a manager's
    slug, a source's origin). Here the record is laid over the current object only for the
    fields the user's change form edits and the history keeps; every other field keeps, and
    shows, its current value (the secrets, which the history does not keep, stay as they are).
    A manager reverting an entitlement gets the entitlement back, as the change page would let
    them set it, and nothing else moves. (Disabling revert for them instead would take away the
    one use the history page has for them.)"""

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        match = getattr(request, "resolver_match", None)
        if obj is not None and match is not None and match.url_name.endswith("_simple_history"):
            current = type(obj)._default_manager.filter(pk=obj.pk).first()
            if current is None:
                # Restoring a deleted object is adding one, read-only fields and all.
                if not self.has_add_permission(request):
                    raise PermissionDenied
                return form
            tracked = {f.name for f in get_history_model_for_model(type(obj))._meta.fields}
            for field in obj._meta.concrete_fields:
                if field.primary_key or (field.name in form.base_fields and field.name in tracked):
                    continue
                setattr(obj, field.attname, getattr(current, field.attname))
        return form


@admin.register(Account)
class AccountAdmin(HistoryRevertMixin, SimpleHistoryAdmin):
    list_display = ["name", "slug", "bg_remove_enabled", "created_at"]
    list_filter = ["bg_remove_enabled"]
    search_fields = ["name", "slug", "sources__slug"]
    history_list_display = ["bg_remove_enabled", "render_rate_limit", "bg_remove_rate_limit", "bg_remove_max_pending"]
    fieldsets = [
        (None, {"fields": ["name", "slug"]}),
        ("Background removal", {"fields": ["bg_remove_enabled"]}),
        ("Limits", {"fields": ["render_rate_limit", "bg_remove_rate_limit", "bg_remove_max_pending"]}),
    ]

    def get_prepopulated_fields(self, request, obj=None):
        # A read-only slug cannot be prepopulated (the admin would fail to render the form). Not a
        # `prepopulated_fields` attribute: the history's revert page reads that one directly.
        return {} if "slug" in self.get_readonly_fields(request, obj) else {"slug": ["name"]}

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
class ApiKeyAdmin(HistoryRevertMixin, SimpleHistoryAdmin):
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

    def revert_disabled(self, request, obj=None):
        return True  # Nothing of a key is edited after creation: a revert could only un-revoke it.

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
        messages.success(request, "Revoked.")
