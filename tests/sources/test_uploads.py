"""The uploads origin (the remove.bg API's images) on both storage backends, and their purge."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from rendering.store import render_purge
from sources.models import Source, Upload
from sources.origins import origin_for
from sources.origins.base import OriginNotFoundError, OriginTooLargeError
from sources.services import (
    SourceInvalidError,
    UploadsKindForbiddenError,
    source_create,
    source_update,
    source_uploads_ensure,
    upload_record,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture(params=["filesystem", "s3"])
def storage(request):
    if request.param == "s3":
        request.getfixturevalue("s3_storage")
    return request.param


def test_uploads_are_read_from_storage_and_purged_with_their_source(account, storage):
    source = source_uploads_ensure(account=account)
    assert source_uploads_ensure(account=account) == source  # One per account.
    assert source.kind == Source.Kind.UPLOADS and source.slug.startswith("uploads-")
    default_storage.save(f"uploads/{source.id}/abc.png", ContentFile(b"\x89PNG data"))
    upload_record(source=source, path="abc.png", size=9, width=1, height=1)
    origin = origin_for(source)
    assert origin.fetch("abc.png", max_bytes=100).data == b"\x89PNG data"
    with pytest.raises(OriginTooLargeError):
        origin.fetch("abc.png", max_bytes=4)
    with pytest.raises(OriginNotFoundError):
        origin.fetch("missing.png", max_bytes=100)
    result = render_purge(source=source)
    assert result.files == 1 and not Upload.objects.exists()
    assert not default_storage.exists(f"uploads/{source.id}/abc.png")


def test_no_source_is_made_or_turned_into_an_uploads_source(account, source):
    with pytest.raises(UploadsKindForbiddenError):
        source_create(account=account, slug="sneaky", kind=Source.Kind.UPLOADS, operator=True)
    with pytest.raises((UploadsKindForbiddenError, SourceInvalidError)):
        source_update(source=source, kind=Source.Kind.UPLOADS, operator=True)
    uploads = source_uploads_ensure(account=account)
    with pytest.raises(UploadsKindForbiddenError):
        source_update(source=uploads, kind=Source.Kind.WEB_FOLDER, base_url="https://example.com/", operator=True)
