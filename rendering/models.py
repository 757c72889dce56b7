"""The render index: finished images in object storage, found by what their URL means."""

from django.db import models
from django.utils import timezone

from sources.models import Source


class Render(models.Model):
    """A finished image in object storage, found by the digest of what the URL means.

    Several renders of one image may share one object (identical bytes), and a render may be a
    job's cutout itself: an object is deleted only once nothing refers to it.
    """

    key = models.CharField(max_length=64, unique=True)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="renders")
    path = models.CharField(max_length=1024)
    # Indexed: "does another render still use this object?" is asked before deleting one.
    storage_name = models.CharField(max_length=512, db_index=True)
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    etag = models.CharField(max_length=70)
    # A size the URL asked for, served smaller to keep within a ceiling: "<asked> -> <served>
    # (<setting>)", sent as X-Render-Capped on every response of this render (rendering/budget.py).
    capped = models.CharField(max_length=100, blank=True, default="")
    # What made the cutout a bg-remove render is drawn from: "<model>/<refinement>" of its job, or
    # "origin" for an origin transparent enough to be its own; sent as X-Bg-Remove-Model and
    # X-Bg-Remove-Refinement (rendering/views.py). Empty for a render without removal.
    cutout_by = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # When a request last found it, to within RENDER_LAST_USED_SECONDS (not a write per hit):
    # the account's stored renders are evicted least recently used first.
    last_used_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # With the etag: a new render asks whether its bytes are already stored for the image
            # (render_store), in one index lookup however many variants the image has.
            models.Index(fields=["source", "path", "etag"]),
            models.Index(fields=["source", "last_used_at"]),
        ]

    def __str__(self):
        return self.storage_name


class RenderInput(models.Model):
    """An image a render was made from besides its own (a mark rendered from another path): a
    purge of that image purges this render too."""

    render = models.ForeignKey(Render, on_delete=models.CASCADE, related_name="inputs")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    path = models.CharField(max_length=1024)

    class Meta:
        indexes = [models.Index(fields=["source", "path"])]
        constraints = [models.UniqueConstraint(fields=["render", "source", "path"], name="one_input_row_per_image")]
