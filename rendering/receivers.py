"""Rendering's side of other apps' events: a deleted source takes its stored objects along."""

import logging

from django.db import transaction
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from cutouts.models import BgRemoveJob
from rendering.models import Render
from rendering.store import (
    render_lookup_cache_clear,
    source_storage_prefixes,
    storage_objects_delete,
    storage_objects_release,
    storage_tree,
)
from sources.models import Source

logger = logging.getLogger(__name__)


@receiver(pre_delete, sender=Source, dispatch_uid="rendering_source_objects_delete")
def source_objects_delete(sender, instance: Source, using, **kwargs) -> None:
    """Before the rows go (cascades from an account included): note the source's objects, and
    delete them once the deletion is committed, so a rolled-back delete loses nothing."""
    names = set(Render.objects.using(using).filter(source=instance).values_list("storage_name", flat=True))
    # Renders of the account's other sources that drew this one's images as marks go with it;
    # their objects may be shared with renders that stay, so they are released, not deleted.
    users = Render.objects.using(using).filter(inputs__source=instance).exclude(source=instance)
    released = set(users.values_list("storage_name", flat=True))
    users.delete()
    names |= set(BgRemoveJob.objects.using(using).filter(source=instance).exclude(cutout_name="")
                 .values_list("cutout_name", flat=True))
    source_id = instance.pk

    def delete_objects():
        try:
            # The rows' objects, then whatever else lies in the source's folders (marks, and
            # objects whose rows were lost).
            removed = storage_objects_delete(names) + storage_objects_release(released)
            for prefix in source_storage_prefixes(source_id):
                removed += storage_objects_delete(list(storage_tree(prefix)))
        except Exception as exc:  # Storage down: the source is gone all the same; say what is left.
            logger.warning("objects of deleted source %s not all deleted: %s", source_id, exc)
            return
        render_lookup_cache_clear()
        logger.info("deleted source %s: %d stored objects removed", source_id, removed)

    transaction.on_commit(delete_objects, using=using)
