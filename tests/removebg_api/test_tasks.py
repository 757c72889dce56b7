"""The expiry of old uploads: scheduled by beat on the housekeeping queue, and doing its work."""

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from PIL import Image

from config.celery_app import app
from removebg_api.tasks import removebg_uploads_expire_run
from sources.models import Upload

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db]


def test_the_expiry_is_scheduled_on_the_usage_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["removebg-uploads-expire"]
    assert entry["task"] == removebg_uploads_expire_run.name
    assert entry["schedule"] == float(settings.REMOVEBG_EXPIRE_SECONDS)
    assert settings.CELERY_TASK_ROUTES[removebg_uploads_expire_run.name] == {"queue": settings.CELERY_USAGE_QUEUE}
    app.loader.import_default_modules()
    assert removebg_uploads_expire_run.name in app.tasks


def test_the_task_deletes_expired_uploads(call, settings):
    settings.REMOVEBG_WAIT_SECONDS = 0
    image = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 1, 1)).save(image, "PNG")
    image.seek(0)
    call({"image_file": image})
    Upload.objects.update(last_used_at=timezone.now() - timedelta(days=settings.REMOVEBG_UPLOAD_RETENTION_DAYS + 1))
    removebg_uploads_expire_run()
    assert not Upload.objects.exists()


def test_the_task_deletes_old_improvement_submissions(call, settings):
    from django.core.files.storage import default_storage

    from removebg_api.models import Improvement

    names = []
    for tag, colour in (("old", (1, 1, 1)), ("new", (2, 2, 2))):
        image = io.BytesIO()
        Image.new("RGB", (20, 20), colour).save(image, "PNG")
        image.seek(0)
        response = call({"image_file": image, "tag": tag}, path="/v1.0/improve")
        assert response.status_code == 200, response.content
    Improvement.objects.filter(tag="old").update(
        created_at=timezone.now() - timedelta(days=settings.REMOVEBG_IMPROVE_RETENTION_DAYS + 1))
    names = dict(Improvement.objects.values_list("tag", "storage_name"))
    removebg_uploads_expire_run()
    assert list(Improvement.objects.values_list("tag", flat=True)) == ["new"]
    assert not default_storage.exists(names["old"]) and default_storage.exists(names["new"])
