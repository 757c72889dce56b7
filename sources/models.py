"""Sources: where an account's images come from, and what rendering they allow."""

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from simple_history.models import HistoricalRecords

from accounts.history import history_user
from accounts.models import Account
from core.model_files import MODELS, model_provisioned, models_provisioned
from sources.origins.base import OriginKind
from sources.origins.local import local_root_for

# A DNS label, so a source can be served at `{slug}.{RENDER_DOMAIN}`.
slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    "Lowercase letters, digits and hyphens; starts and ends with a letter or digit.",
)


class Source(models.Model):
    Kind = OriginKind

    class BgRemove(models.TextChoices):
        INHERIT = "inherit", "Inherit from account"
        ON = "on", "On"
        OFF = "off", "Off"

    class Refinement(models.TextChoices):
        CLEAN_EDGES = "clean-edges", "Clean edges (faint noise and the old background's colour taken out)"
        NONE = "none", "None (the model's mask and the photo's colours)"
        POST_PROCESS = "post-process", "Post-process the mask"
        ALPHA_MATTING = "alpha-matting", "Alpha matting"
        CLEAN_EDGES_ML = "clean-edges-ml", "Clean edges, whole-image estimate (slower)"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sources")
    slug = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    kind = models.CharField(max_length=8, choices=Kind.choices)

    base_url = models.URLField("base URL", blank=True, help_text="Web folder: images are fetched from base URL + path.")
    s3_bucket = models.CharField("S3 bucket", max_length=63, blank=True)
    s3_prefix = models.CharField("S3 key prefix", max_length=512, blank=True)
    s3_region = models.CharField("S3 region", max_length=32, blank=True, default="us-east-1")
    s3_endpoint_url = models.URLField("S3 endpoint URL", blank=True, help_text="Only for S3-compatible stores.")
    s3_access_key_id = models.CharField(max_length=128, blank=True)
    s3_secret_access_key = models.CharField(max_length=256, blank=True)
    local_path = models.CharField(
        max_length=512, blank=True, help_text="Local folder: a folder below the configured ORIGIN_LOCAL_ROOT."
    )

    require_signature = models.BooleanField(
        "require signed URLs", default=False,
        help_text="Requests must carry imgix's `s` signature made with one of the secure tokens.",
    )
    secure_tokens = models.JSONField(
        default=list, blank=True,
        help_text="Signing tokens, newest first; keeping the old one for a while lets a token rotate.",
    )

    bg_remove = models.CharField(
        "background removal", max_length=8, choices=BgRemove.choices, default=BgRemove.INHERIT
    )
    bg_remove_model = models.CharField(
        "background removal model", max_length=32, blank=True,
        help_text="A provisioned rembg model; empty uses the platform default.",
    )
    bg_remove_refinement = models.CharField(
        "edge refinement", max_length=16, choices=Refinement.choices, default=Refinement.CLEAN_EDGES,
        help_text="After the model: clean edges (the default: the mask's faint noise removed and the old "
                  "background's colour taken out of the soft edge, a few hundredths of a second), none, rembg's "
                  "post-processing, alpha matting (slower), or clean edges by a whole-image estimate (about "
                  "0.25 s per megapixel).",
    )
    cache_max_age = models.PositiveIntegerField(
        "cache TTL (seconds)", null=True, blank=True, help_text="Empty uses the platform default (one year)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(get_user=history_user, excluded_fields=["created_at", "s3_secret_access_key", "secure_tokens"])

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug

    def clean(self):
        required = {
            self.Kind.WEB_FOLDER: ["base_url"],
            self.Kind.S3: ["s3_bucket"],
            self.Kind.LOCAL_FOLDER: ["local_path"],
        }.get(self.kind, [])
        errors = {name: "Required for this kind of source." for name in required if not getattr(self, name)}
        if self.kind == self.Kind.LOCAL_FOLDER and self.local_path:
            try:
                local_root_for(self.local_path)
            except Exception as exc:
                errors["local_path"] = str(exc)
        if self.kind == self.Kind.S3 and bool(self.s3_access_key_id) != bool(self.s3_secret_access_key):
            # Half a key pair would sign with nothing or fall back on someone else's: refused.
            missing = "s3_secret_access_key" if self.s3_access_key_id else "s3_access_key_id"
            errors[missing] = ("An S3 key id and its secret go together: give both, or neither "
                               "for anonymous (unsigned) requests.")
        if self.bg_remove_model and not model_provisioned(self.bg_remove_model):
            known = "Not provisioned here" if self.bg_remove_model in MODELS else "Not a model this platform knows"
            errors["bg_remove_model"] = f"{known}; choose one of {', '.join(models_provisioned())}, or leave it empty."
        if not isinstance(self.secure_tokens, list) or not all(isinstance(t, str) and t for t in self.secure_tokens):
            errors["secure_tokens"] = "A list of non-empty strings."
        elif self.require_signature and not self.secure_tokens:
            errors["secure_tokens"] = "Signed URLs need at least one token."
        if errors:
            raise ValidationError(errors)


class Upload(models.Model):
    """An image uploaded to an account's uploads source (the remove.bg API), named by its content:
    `path` is its SHA-256 and extension, so the same image twice is one upload and one job."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="uploads")
    path = models.CharField(max_length=80)
    size = models.PositiveIntegerField()
    # As displayed (EXIF orientation applied): foreground positions are reported in these pixels.
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Retention counts from the last call that used it (REMOVEBG_UPLOAD_RETENTION_DAYS).
    last_used_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "path"], name="one_upload_per_content")]
        ordering = ["-last_used_at"]

    def __str__(self):
        return f"{self.source_id}:{self.path}"
