"""Origins: where a source's image bytes come from."""

from sources.origins.base import Origin, OriginError, OriginKind, OriginObject, path_clean  # noqa: F401
from sources.origins.local import LocalFolderOrigin
from sources.origins.s3 import S3Origin
from sources.origins.uploads import UploadsOrigin
from sources.origins.web import WebFolderOrigin


def origin_for(source) -> Origin:
    """The origin a source (sources.models.Source) names."""
    if source.kind == OriginKind.WEB_FOLDER:
        return WebFolderOrigin(source.base_url)
    if source.kind == OriginKind.S3:
        return S3Origin(
            bucket=source.s3_bucket,
            prefix=source.s3_prefix,
            region=source.s3_region,
            endpoint_url=source.s3_endpoint_url,
            access_key_id=source.s3_access_key_id,
            secret_access_key=source.s3_secret_access_key,
        )
    if source.kind == OriginKind.UPLOADS:
        return UploadsOrigin(source.id)
    return LocalFolderOrigin(source.local_path)
