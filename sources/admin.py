"""Admin for sources: account managers set background removal to inherit, on or off."""

import hmac
import secrets
from contextvars import ContextVar

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.crypto import salted_hmac
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from accounts.admin import HistoryRevertMixin
from core.model_files import models_provisioned
from sources.models import Source
from sources.selectors import source_bg_remove_enabled
from sources.services import ORIGIN_FIELDS, TOKENS_KEPT, source_token_rotate

# Secrets: only superusers see the S3 secret; signing tokens are shown masked to whoever may view
# the source, and revealed or rotated one POST at a time to whoever may change it.
SECRET_FIELDS = {"s3_secret_access_key", "secure_tokens", "add_token"}

# Each kind's own fields: the form shows the fieldset of the kind chosen (static JS switches them
# as the kind changes) and clears the others' on save, so a source never keeps, say, S3
# credentials it does not use. Cleared rather than refused: the fields are hidden, and a person
# switching a source from S3 to a web folder should not have to find and empty them first.
KIND_FIELDS = {
    Source.Kind.WEB_FOLDER: ["base_url"],
    Source.Kind.S3: ["s3_bucket", "s3_prefix", "s3_region", "s3_endpoint_url", "s3_access_key_id",
                     "s3_secret_access_key"],
    Source.Kind.LOCAL_FOLDER: ["local_path"],
}
KIND_TITLES = {Source.Kind.WEB_FOLDER: "Web folder", Source.Kind.S3: "S3 bucket",
               Source.Kind.LOCAL_FOLDER: "Local folder"}
# Who is looking at the change page being rendered (SourceAdmin.changeform_view).
_viewer: ContextVar = ContextVar("source_admin_viewer", default=None)
TOKEN_SHOWN = 4  # Leading characters of a signing token in its masked form.
TOKEN_SHOWN_FROM = 16  # A shorter (hand-made) token shows none of its characters.


def token_masked(token: str) -> str:
    return f"{token[:TOKEN_SHOWN] if len(token) >= TOKEN_SHOWN_FROM else ''}•••"


def token_fingerprint(token: str) -> str:
    """Names a token in URLs and the page without giving it away (a keyed hash: even a short
    hand-made token cannot be guessed from it offline)."""
    return salted_hmac("sources.admin.token", token).hexdigest()[:16]


class SourceAdminForm(forms.ModelForm):
    # A token made elsewhere (a source moved from imgix keeps its signed URLs): a superuser's,
    # never shown back, put first as a rotation would.
    add_token = forms.CharField(
        label="add an existing token", required=False, strip=True, max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=f"Optional: a signing token of at least {TOKEN_SHOWN_FROM} characters made elsewhere (e.g. imgix's), "
                  "to become the newest. To make a new one, save and use Rotate.",
    )

    def clean_add_token(self):
        token = self.cleaned_data.get("add_token", "")
        if token and len(token) < TOKEN_SHOWN_FROM:
            raise forms.ValidationError(f"At least {TOKEN_SHOWN_FROM} characters.")
        if token and token in (self.instance.secure_tokens or []):
            raise forms.ValidationError("Already one of this source's tokens.")
        return token

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("add_token"):
            tokens = list(self.instance.secure_tokens or [])
            self.instance.secure_tokens = [cleaned["add_token"], *tokens][:TOKENS_KEPT]
            self.instance._change_reason = f"Added signing token {token_masked(cleaned['add_token'])}"
        kind = cleaned.get("kind", self.instance.kind)
        self.cleared = []
        for other, names in KIND_FIELDS.items():
            if other == kind:
                continue
            for name in names:
                if name not in self.fields:
                    continue
                default = Source._meta.get_field(name).get_default()
                if cleaned.get(name) not in ("", None, default):
                    self.cleared.append(str(self.fields[name].label))
                cleaned[name] = default
        self.token_created = False
        if cleaned.get("require_signature") and not self.instance.secure_tokens and not cleaned.get("add_token"):
            # Signed URLs need a token; the first is made here, as the API's source_create does.
            self.instance.secure_tokens = [secrets.token_hex(16)]
            self.token_created = True
        return cleaned


@admin.register(Source)
class SourceAdmin(HistoryRevertMixin, SimpleHistoryAdmin):
    form = SourceAdminForm
    list_display = ["slug", "account", "kind", "bg_remove", "bg_remove_effective"]
    list_filter = ["kind", "bg_remove"]
    search_fields = ["slug", "account__name", "account__slug"]
    list_select_related = ["account"]
    history_list_display = ["bg_remove", "bg_remove_model", "bg_remove_refinement"]
    fieldsets = [
        (None, {"fields": ["account", "slug", "kind"]}),
        *[(KIND_TITLES[kind], {"fields": names, "classes": ["origin-kind", f"origin-kind-{kind}"]})
          for kind, names in KIND_FIELDS.items()],
        ("Signed URLs", {"fields": ["require_signature", "signing_tokens", "add_token"]}),
        ("Rendering", {"fields": ["bg_remove", "bg_remove_model", "bg_remove_refinement", "cache_max_age"]}),
    ]

    class Media:
        js = ["sources/admin/source_form.js"]
        css = {"all": ["sources/admin/source_form.css"]}

    @admin.display(boolean=True, description="bg-remove in effect")
    def bg_remove_effective(self, obj):
        return source_bg_remove_enabled(source=obj)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if not request.user.is_superuser:
            # A declared field is in every form whatever the fieldsets say: taken out for managers.
            form.base_fields.pop("add_token", None)
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
        fieldsets = self.fieldsets
        if obj is not None and (obj.kind == Source.Kind.UPLOADS or "kind" in self.get_readonly_fields(request, obj)):
            # The kind cannot change here: only its own fields, no switching.
            fieldsets = [(name, opts) for name, opts in fieldsets
                         if "origin-kind" not in opts.get("classes", []) or f"origin-kind-{obj.kind}" in opts["classes"]]
        if request.user.is_superuser:
            return fieldsets
        # Managers never see origin credentials.
        return [(name, {**opts, "fields": [f for f in opts["fields"] if f not in SECRET_FIELDS]})
                for name, opts in fieldsets]

    def get_readonly_fields(self, request, obj=None):
        # Account managers switch entitlements; where images come from is the owner's business.
        if obj is not None and not request.user.is_superuser:
            return [*ORIGIN_FIELDS, "signing_tokens"]
        return ["signing_tokens"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if getattr(form, "cleared", None):
            messages.info(request, f"Cleared the fields of other kinds of source: {', '.join(form.cleared)}.")
        if form.cleaned_data.get("add_token"):
            messages.info(request, f"Signing token {token_masked(form.cleaned_data['add_token'])} added, newest first.")
        if getattr(form, "token_created", False):
            messages.info(request, "A signing token was created; copy it from Signed URLs.")

    # Signing tokens: listed masked; copied (revealed) and rotated by POST, CSRF-checked, for
    # those who may change the source. Never in the page's HTML: a view-only user, or a script
    # reading the page, gets the masked form only.

    def changeform_view(self, request, *args, **kwargs):
        # The token panel is a read-only field, which Django renders knowing the object only: who
        # is looking comes through a context variable (per request and thread, unlike the admin
        # instance, which every request shares), and the page is rendered while it is set.
        reset = _viewer.set(request)
        try:
            response = super().changeform_view(request, *args, **kwargs)
            if hasattr(response, "render"):
                response.render()
            return response
        finally:
            _viewer.reset(reset)

    def get_urls(self):
        urls = [
            path("<int:source_id>/tokens/rotate/", self.admin_site.admin_view(self.token_rotate_view),
                 name="sources_source_token_rotate"),
            path("<int:source_id>/tokens/<str:fingerprint>/reveal/", self.admin_site.admin_view(self.token_reveal_view),
                 name="sources_source_token_reveal"),
        ]
        return urls + super().get_urls()

    def _source_to_change(self, request, source_id) -> Source:
        if request.method != "POST":
            raise PermissionDenied  # Never by GET: a link or a prefetch cannot reveal or rotate.
        source = Source.objects.filter(pk=source_id).first()
        if source is None:
            raise Http404("No such source.")
        if not self.has_change_permission(request, source):
            raise PermissionDenied
        return source

    def token_reveal_view(self, request, source_id, fingerprint):
        source = self._source_to_change(request, source_id)
        token = next((t for t in source.secure_tokens if hmac.compare_digest(token_fingerprint(t), fingerprint)), None)
        if token is None:
            raise Http404("No such token (rotated away?): reload the page.")
        self.log_change(request, source, f"Copied signing token {token_masked(token)}.")
        response = JsonResponse({"token": token})
        response["Cache-Control"] = "no-store"
        return response

    def token_rotate_view(self, request, source_id):
        source = self._source_to_change(request, source_id)
        previous = list(source.secure_tokens)
        kept, dropped = previous[:TOKENS_KEPT - 1], previous[TOKENS_KEPT - 1:]
        # The history leaves the tokens out (secrets); the rotation is recorded as a change with
        # this reason, which names tokens by their masked form only.
        after = "".join([
            f"; {', '.join(map(token_masked, kept))} still valid until the next rotation" if kept else "",
            f"; {', '.join(map(token_masked, dropped))} no longer valid" if dropped else "",
        ])
        source._change_reason = f"Rotated the signing token{after}"[:100]
        token = source_token_rotate(source=source)
        self.log_change(request, source, f"Rotated the signing token: new {token_masked(token)}{after}.")
        messages.success(request, f"New signing token {token_masked(token)}{after}.")
        return HttpResponseRedirect(reverse("admin:sources_source_change", args=[source.pk]))

    @admin.display(description="signing tokens")
    def signing_tokens(self, obj):
        if obj is None or obj.pk is None:
            return "Made when the source is saved with signed URLs required; rotated here afterwards."
        request = _viewer.get()
        can_change = request is not None and self.has_change_permission(request, obj)
        items = format_html_join("", '<li class="signing-token" data-fingerprint="{}"><code>{}</code> {} {}</li>', (
            (token_fingerprint(token), token_masked(token), "newest, signs the admin's links" if i == 0 else "previous",
             format_html('<button type="button" class="button token-copy" data-url="{}">Copy</button>',
                         reverse("admin:sources_source_token_reveal", args=[obj.pk, token_fingerprint(token)]))
             if can_change else "")
            for i, token in enumerate(obj.secure_tokens)
        ))
        rotate = format_html(
            '<button type="submit" class="button token-rotate" formmethod="post" formaction="{}" formnovalidate>'
            "{}</button>", reverse("admin:sources_source_token_rotate", args=[obj.pk]),
            "Rotate: a new token first" if obj.secure_tokens else "Create a token",
        ) if can_change else ""
        listed = format_html('<ul class="signing-tokens">{}</ul>', items) if obj.secure_tokens else "No tokens."
        return format_html('<div class="signing-tokens-panel">{}{}<p class="help">{}</p></div>', listed, rotate,
                           f"Newest first. Rotating keeps the previous newest valid until the next rotation "
                           f"({TOKENS_KEPT} at most), so clients can move to the new one.")
