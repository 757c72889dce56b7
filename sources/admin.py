"""Admin for sources: account managers set background removal to inherit, on or off."""

from django import forms
from django.conf import settings
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from accounts.admin import HistoryRevertMixin
from core.model_files import models_provisioned
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

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        field = form.base_fields.get("bg_remove_model")
        if field is not None:
            # A choice of what this server has, not a free text field to misspell: the models
            # provisioned here, each file checked against its checksum (once per process).
            available = models_provisioned()
            choices = [("", f"Platform default ({settings.BG_REMOVE_DEFAULT_MODEL})")]
            choices += [(name, name) for name in available]
            current = obj.bg_remove_model if obj is not None else ""
            if current and current not in available:
                # Shown as it is rather than silently replaced; saving asks for another (Source.clean).
                choices.append((current, f"{current} (not provisioned here: renders use the default)"))
            field.widget = forms.Select(choices=choices)
            field.help_text = (
                f"Available on this server: {', '.join(available) or 'none'}. An operator adds another "
                "rembg model with `manage.py provision_models NAME` (docs/deploy.md)."
            )
        return form

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
