"""S3 origin: objects under a bucket and key prefix, read with the source's credentials."""

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from django.conf import settings

from .base import (
    Origin,
    OriginError,
    OriginForbiddenError,
    OriginNotFoundError,
    OriginObject,
    OriginTimeoutError,
    OriginUnavailableError,
    read_capped,
)
from .net import botocore_network_safe


class S3Origin(Origin):
    def __init__(self, *, bucket, prefix="", region="", endpoint_url="", access_key_id="", secret_access_key=""):
        self.bucket = bucket
        self.prefix = prefix
        self.client = boto3.client(
            "s3",
            region_name=region or None,
            endpoint_url=endpoint_url or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=Config(
                connect_timeout=settings.ORIGIN_CONNECT_TIMEOUT,
                read_timeout=settings.ORIGIN_TOTAL_TIMEOUT,
                retries={"max_attempts": 2},
            ),
        )
        botocore_network_safe(self.client)

    def key_for(self, path: str) -> str:
        # `path` is already clean (no '..'), so the key cannot leave the prefix.
        prefix = self.prefix.strip("/")
        return f"{prefix}/{path}" if prefix else path

    def fetch(self, path, *, max_bytes):
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key_for(path))
            body = obj["Body"]
            try:
                data = read_capped(body.iter_chunks(256 * 1024), max_bytes)
            finally:
                body.close()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise OriginNotFoundError() from None
            if code in ("AccessDenied", "403", "NoSuchBucket"):
                raise OriginForbiddenError(f"The S3 origin refused the request ({code}).") from None
            raise OriginUnavailableError(f"The S3 origin answered with an error ({code}).") from None
        except (ConnectTimeoutError, ReadTimeoutError):
            raise OriginTimeoutError() from None
        except BotoCoreError as exc:
            # botocore wraps what the connection raised: a refused address stays that error.
            inner = getattr(exc, "kwargs", {}).get("error")
            if isinstance(inner, OriginError):
                raise inner from None
            raise OriginUnavailableError() from None
        return OriginObject(data=data, version=obj.get("ETag", "").strip('"'), content_type=obj.get("ContentType", ""))
