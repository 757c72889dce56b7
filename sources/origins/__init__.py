"""Origins: where a source's image bytes come from."""

from .base import Origin, OriginError, OriginObject, path_clean  # noqa: F401


def origin_for(source) -> Origin:
    from ..models import Source
    from .local import LocalFolderOrigin
    from .s3 import S3Origin
    from .web import WebFolderOrigin

    if source.kind == Source.Kind.WEB_FOLDER:
        return WebFolderOrigin(source.base_url)
    if source.kind == Source.Kind.S3:
        return S3Origin(
            bucket=source.s3_bucket,
            prefix=source.s3_prefix,
            region=source.s3_region,
            endpoint_url=source.s3_endpoint_url,
            access_key_id=source.s3_access_key_id,
            secret_access_key=source.s3_secret_access_key,
        )
    return LocalFolderOrigin(source.local_path)
