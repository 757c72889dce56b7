"""A call's cutout job, through the rendering URLs' admission, and the bounded wait for it."""

import threading
import time
from contextlib import contextmanager

from django.conf import settings

from core.errors import ServiceUnavailableError
from cutouts.admission import job_retry_after
from cutouts.models import BgRemoveJob
from cutouts.services import Ensured, bg_remove_job_ensure, bg_remove_job_raise_failure
from removebg_api.errors import TooManyWaitingError, WaitTimeoutError
from removebg_api.inputs import Input
from removebg_api.options import Options
from sources.selectors import source_bg_remove_model

# remove.bg's `type` as a model hint where a provisioned model fits it better than the default.
TYPE_MODELS = {"person": "u2net_human_seg"}


def removebg_job_ensure(*, input: Input, options: Options) -> Ensured:
    """The upload's cutout job (one per content, model and refinement), created by the first
    call only, through the same admission as rendering URLs (queue ceilings, bg-remove rate)."""
    source = input.source
    model = source_bg_remove_model(source=source, requested=TYPE_MODELS.get(options.type))
    return bg_remove_job_ensure(source=source, path=input.upload.path, model=model,
                                refinement=source.bg_remove_refinement)


_waiting_lock = threading.Lock()
_waiting = 0


@contextmanager
def waiting_slot():
    """One of the process's REMOVEBG_MAX_WAITING places for a call waiting on its job, or 429 at
    once: a call waits holding a web thread, and strangers must not park every thread."""
    global _waiting
    with _waiting_lock:
        if _waiting >= settings.REMOVEBG_MAX_WAITING:
            raise TooManyWaitingError()
        _waiting += 1
    try:
        yield
    finally:
        with _waiting_lock:
            _waiting -= 1


def job_wait(*, job: BgRemoveJob, timeout: float | None = None) -> BgRemoveJob:
    """The job once it is done (or failed), reading its row with backoff (50 ms growing to 1 s),
    which every process sees alike; WaitTimeoutError (429, Retry-After) after `timeout` seconds
    (REMOVEBG_WAIT_SECONDS): the job goes on, and the same call again finds it."""
    timeout = settings.REMOVEBG_WAIT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + timeout
    delay = 0.05
    while job.status not in (BgRemoveJob.Status.DONE, BgRemoveJob.Status.FAILED):
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeoutError(retry_after=job_retry_after(job))
        time.sleep(min(delay, left))
        delay = min(delay * 1.5, 1.0)
        found = BgRemoveJob.objects.filter(pk=job.pk).first()
        if found is None:
            raise ServiceUnavailableError("The job was purged while this call waited; send the call again.")
        job = found
    if job.status == BgRemoveJob.Status.FAILED:
        bg_remove_job_raise_failure(job)
    return job
