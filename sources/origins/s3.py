"""S3 origin: objects under a bucket and key prefix, read with the source's own credentials or none."""

import threading

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.configprovider import (
    BOTOCORE_DEFAUT_SESSION_VARIABLES,
    DEFAULT_PROXIES_CONFIG_VARS,
    DEFAULT_S3_CONFIG_VARS,
    ConfigChainFactory,
    ConfigValueStore,
    SectionConfigProvider,
    _create_config_chain_mapping,
)
from botocore.credentials import CredentialResolver
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from django.conf import settings

from sources.origins.base import (
    Origin,
    OriginError,
    OriginForbiddenError,
    OriginNotFoundError,
    OriginObject,
    OriginTimeoutError,
    OriginUnavailableError,
    read_capped,
)
from sources.origins.deadlines import fetch_deadline
from sources.origins.net import botocore_network_safe

# Never a file: the platform's ~/.aws files are not the tenant's.
_NO_FILE = "/nonexistent/cutout-tenant-s3"


class _TenantSession(botocore.session.Session):
    """A botocore session that reads nothing of the platform's: no AWS_* variable (keys, session
    token, profile, config and credentials files, AWS_ENDPOINT_URL*), no ~/.aws file, no instance
    or container role. boto3's default session reads all of these, and would sign a tenant's
    requests with the platform's keys or send them to the platform's own store.

    botocore builds its configuration from os.environ in this one method; it is built here the
    same way from an empty environment. tests/sources/test_s3_credentials.py proves it on a real
    web process started with the platform's AWS_* set, so a botocore change that defeats it fails."""

    def _register_config_store(self):
        chain = ConfigChainFactory(session=self, environ={})
        mapping = _create_config_chain_mapping(chain, BOTOCORE_DEFAUT_SESSION_VARIABLES)
        for section, variables in (("s3", DEFAULT_S3_CONFIG_VARS), ("proxies_config", DEFAULT_PROXIES_CONFIG_VARS)):
            mapping[section] = SectionConfigProvider(section, self, _create_config_chain_mapping(chain, variables))
        self._components.register_component("config_store", ConfigValueStore(mapping=mapping))


_session = None
# A botocore session is not thread-safe; clients are. One session (its loaded service models)
# serves every origin, so a fetch does not pay for parsing the S3 model again.
_session_lock = threading.Lock()


def _tenant_client(*, region, endpoint_url, access_key_id, secret_access_key, config):
    global _session
    with _session_lock:
        if _session is None:
            session = _TenantSession()
            session.set_config_variable("config_file", _NO_FILE)
            session.set_config_variable("credentials_file", _NO_FILE)
            # No credential chain at all: the source's own keys are passed explicitly, or none.
            session.register_component("credential_provider", CredentialResolver(providers=[]))
            _session = session
        return _session.create_client(
            "s3", region_name=region, endpoint_url=endpoint_url, config=config,
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
        )


class S3Origin(Origin):
    def __init__(self, *, bucket, prefix="", region="", endpoint_url="", access_key_id="", secret_access_key=""):
        self.bucket = bucket
        self.prefix = prefix
        # A source without a key pair of its own makes anonymous, unsigned requests (a public
        # bucket); Source.clean() refuses half a pair.
        signed = bool(access_key_id and secret_access_key)
        self.client = _tenant_client(
            region=region or "us-east-1",
            endpoint_url=endpoint_url or None,
            access_key_id=access_key_id if signed else None,
            secret_access_key=secret_access_key if signed else None,
            config=Config(
                connect_timeout=settings.ORIGIN_CONNECT_TIMEOUT,
                read_timeout=settings.ORIGIN_TOTAL_TIMEOUT,
                retries={"max_attempts": 2, "mode": "legacy"},
                ignore_configured_endpoint_urls=True,
                **({} if signed else {"signature_version": UNSIGNED}),
            ),
        )
        botocore_network_safe(self.client)

    def key_for(self, path: str) -> str:
        # `path` is already clean (no '..'), so the key cannot leave the prefix.
        prefix = self.prefix.strip("/")
        return f"{prefix}/{path}" if prefix else path

    def fetch(self, path, *, max_bytes):
        # The endpoint is the tenant's and may trickle: botocore's receives are under the same
        # total deadline as every fetch (sources/origins/deadlines.py), its retry included.
        with fetch_deadline(settings.ORIGIN_TOTAL_TIMEOUT) as deadline:
            try:
                fetched = self._get(path, max_bytes=max_bytes)
            except OriginError:
                if deadline.expired:
                    raise OriginTimeoutError() from None
                raise
            if deadline.expired:
                raise OriginTimeoutError()
            return fetched

    def _get(self, path, *, max_bytes):
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
