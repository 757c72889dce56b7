"""The one error base class and its family: a status, a code and a public message, as data."""


class ServiceError(Exception):
    """A failure with a public message; `status_code` and `code` say how it reaches a client."""

    status_code = 500
    code = "internal_error"
    default_message = "Internal error."
    # Seconds for a Retry-After header, for errors a client should retry later.
    retry_after = None

    def __init__(self, message=None, *, code=None, retry_after=None):
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after
        super().__init__(self.message)


class BadRequestError(ServiceError):
    status_code = 400
    code = "bad_request"
    default_message = "The request is malformed."


class ForbiddenError(ServiceError):
    status_code = 403
    code = "forbidden"
    default_message = "Not allowed."


class NotFoundError(ServiceError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class ServiceUnavailableError(ServiceError):
    status_code = 503
    code = "service_unavailable"
    default_message = "A backing service is unavailable; try again shortly."
    retry_after = 5


class ConflictError(ServiceError):
    status_code = 409
    code = "conflict"
    default_message = "This conflicts with the current state."
