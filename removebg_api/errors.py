"""remove.bg's errors: every answer of this API that is not a result has its shape,
`{"errors": [{"title", "code", "detail"}]}`, and one of its statuses."""

from core.errors import BadRequestError, ForbiddenError, ServiceError


class RemoveBgError(BadRequestError):
    """A 400 with one of remove.bg's error codes (its spec's examples name them)."""

    def __init__(self, code: str, title: str, detail: str = ""):
        super().__init__(title, code=code)
        self.detail = detail


class ApiKeyError(ForbiddenError):
    code = "auth_failed"
    default_message = "API Key invalid"


class InsufficientCreditsError(ServiceError):
    """Only a metered account's (removebg_api/credits.py); `detail` says where credits are set."""

    status_code = 402
    code = "insufficient_credits"
    default_message = "Insufficient credits"

    def __init__(self, message=None, *, detail: str = ""):
        super().__init__(message)
        self.detail = detail


class WaitTimeoutError(ServiceError):
    """The cutout is not ready within REMOVEBG_WAIT_SECONDS: the same call again finds its job."""

    status_code = 429
    code = "result_pending"
    default_message = "The result is still being computed; send the same request again after Retry-After seconds."


class TooManyWaitingError(ServiceError):
    status_code = 429
    code = "too_many_waiting"
    default_message = "Too many calls are waiting for results on this server; retry shortly."
    retry_after = 2


class UploadsFullError(ServiceError):
    """The account's uploads are at REMOVEBG_UPLOADS_MAX_* and what is left is in use by
    unfinished jobs: nothing can be expired to make room yet."""

    status_code = 429
    code = "uploads_storage_full"
    default_message = ("The account's stored uploads are at their ceiling, and none can be expired to make room "
                       "(those left are in use by unfinished jobs, or this image alone is over it); retry later.")
    retry_after = 30


class ImprovementsFullError(ServiceError):
    """The account's kept /improve submissions are at REMOVEBG_IMPROVE_MAX_*: old ones expire
    after REMOVEBG_IMPROVE_RETENTION_DAYS."""

    status_code = 429
    code = "improve_storage_full"
    default_message = "The account's kept improvement submissions are at their ceiling; retry once old ones expire."
    retry_after = 3600
