"""The remove.bg API's workflows: each call's admission before its body is read, then the whole call, in order."""

from collections.abc import Callable
from dataclasses import dataclass, replace

from django.conf import settings
from django.utils import timezone

from accounts.limits import rate_limit
from accounts.models import Account
from core.errors import ServiceError
from cutouts.models import BgRemoveJob
from removebg_api.credits import (
    Charge,
    call_hold,
    call_hold_check,
    call_hold_settle,
    call_record,
    credits_give_back,
    credits_payable_check,
    credits_take,
)
from removebg_api.errors import RemoveBgError, TooManyWaitingError, WaitTimeoutError
from removebg_api.improvements import improvement_store
from removebg_api.inputs import Input, background_check, image_given, image_read, input_store, roi_check
from removebg_api.jobs import job_wait, removebg_job_ensure, waiting_slot
from removebg_api.models import Improvement
from removebg_api.options import Options, options_parse
from removebg_api.results import Result, result_render
from rendering.gate import Door, Entry, render_gate
from rendering.store import render_purge
from sources.models import Source
from sources.services import source_uploads_ensure
from usage.services import usage_record

OPTION_FIELDS = ("size", "type", "type_level", "format", "roi", "crop", "crop_margin", "scale", "position",
                 "channels", "add_shadow", "semitransparency", "bg_color")
# Errors that are ours or of the moment, not the call's: a call ending in one is never charged,
# even after the model ran (the same call again is answered, and charged, then).
_NOT_THE_CALLS = {"render_busy"}


@dataclass(frozen=True)
class Answer:
    result: Result
    options: Options
    charge: Charge
    # The cutout was there before this call (no wait).
    cached: bool
    # The model and the refinement that made the cutout (X-Bg-Remove-Model, X-Bg-Remove-Refinement).
    model: str = ""
    refinement: str = ""


def removebg_admit(*, account: Account, payable: bool = True) -> Source:
    """What a call must pass before its body is read: the render gate's door for remove.bg's API
    (rendering/gate.py: the account's uploads source, the key's account, background removal
    enabled, then the account's request rate, counted here so even a body that cannot be parsed
    counts), and (for /removebg) something it could pay for."""
    gate = render_gate(Entry(door=Door.REMOVEBG, source=source_uploads_ensure(account=account), account=account,
                             bg_remove=True))
    if payable:
        credits_payable_check(account=account)
    return gate.source


def removebg_call(*, account: Account, source: Source, fields: dict, files: dict,
                  enqueue: Callable[[BgRemoveJob], None]) -> Answer:
    """POST /v1.0/removebg once admitted (removebg_admit) and parsed: the options and which
    images were given (nothing read); the charge, taken atomically (402); the images read or
    downloaded, checked from their headers with the roi; the upload; the job (queued through
    `enqueue`, the entry point's) and the wait; the result; the record.

    The bill: a call is charged once the model has run (or will run) for it, and only then.
    Before its job, a refusal (the image's, the roi's, the queue's, ours) gives the charge back
    and takes away the upload this call stored, unless a job uses it. A call answered before its
    result (429) holds its charge, as the model runs for it; the same call again, answered,
    takes the hold's place, and a failed job gives it back. From the done job on, the call is
    charged whatever happens, except for what is ours or of the moment (_NOT_THE_CALLS, 5xx):
    a failure is recorded with its code."""
    options = options_parse({name: fields.get(name) for name in OPTION_FIELDS})
    image = image_given(file=files.get("image_file"), b64=_text(fields, "image_file_b64"),
                        url=_text(fields, "image_url"))
    if image is None:
        raise RemoveBgError("missing_source", "No image given", "Please provide the source image in the image_url, "
                            "image_file or image_file_b64 parameter.")
    if options.bg_color is not None and (files.get("bg_image_file") or fields.get("bg_image_url")):
        raise RemoveBgError("multiple_bg_sources", "Multiple background sources given: Please provide either the "
                            "bg_color, the bg_image_url or the bg_image_file parameter.")
    background_given = image_given(file=files.get("bg_image_file"), url=_text(fields, "bg_image_url"), what="bg")
    charge = credits_take(account=account, options=options)
    if charge.size is not None and charge.size != options.size:
        options = replace(options, size=charge.size)  # size=auto on what the balance pays.
    given = job = None
    try:
        data = image_read(image)
        background = image_read(background_given) if background_given is not None else None
        if background is not None:
            background_check(background)
        given = input_store(account=account, source=source, data=data)
        roi_check(roi=options.roi, upload=given.upload)
        call_hold_check(account=account, upload=given.upload, options=options, charge=charge)
        job, queue = removebg_job_ensure(input=given, options=options)
        cached = job.status == BgRemoveJob.Status.DONE
        if queue:
            enqueue(job)  # 503 when the broker cannot take it.
        if not cached:
            with waiting_slot():
                job = job_wait(job=job)
    except (WaitTimeoutError, TooManyWaitingError) as exc:
        # Answered before its result, but the model will run for it: the charge is held (one
        # per account and job, however often the call is sent again), until an answered call
        # takes its place or the job fails (removebg_api/receivers.py).
        if not call_hold(account=account, job=job, upload=given.upload, options=options, charge=charge,
                         error_code=exc.code):
            credits_give_back(charge=charge)
        raise
    except Exception:
        credits_give_back(charge=charge)
        if given is not None:
            _input_forget(given)
        raise
    try:
        # The one place the API renders: its result from the cutout, through the rendering stages.
        result = result_render(job=job, upload=given.upload, options=options, background=background)
    except ServiceError as exc:
        if exc.code in _NOT_THE_CALLS or exc.status_code >= 500:
            credits_give_back(charge=charge)
        else:
            charge = call_hold_settle(account=account, job=job, options=options, charge=charge)
            call_record(account=account, job=job, upload=given.upload, options=options, charge=charge,
                        error_code=exc.code)
            exc.credits_charged = charge.credits
        raise
    except Exception:
        credits_give_back(charge=charge)
        raise
    charge = call_hold_settle(account=account, job=job, options=options, charge=charge)
    call_record(account=account, job=job, upload=given.upload, options=options, charge=charge,
                width=result.width, height=result.height)
    usage_record(source_id=source.id, day=timezone.now().date(), served_bytes=len(result.data), hit=cached)
    return Answer(result=result, options=options, charge=charge, cached=cached, model=job.model,
                  refinement=job.refinement)


def _input_forget(given: Input) -> None:
    """A call that costs nothing keeps nothing: the upload it stored goes, unless a job of it is
    queued, running or done (another call's, or this call's past its wait)."""
    if not given.new:
        return
    jobs = BgRemoveJob.objects.filter(source=given.source, path=given.upload.path)
    if not jobs.exclude(status=BgRemoveJob.Status.FAILED).exists():
        render_purge(source=given.source, path=given.upload.path)


def _text(fields: dict, name: str) -> str | None:
    value = fields.get(name)
    if value is None or isinstance(value, str):
        return value
    raise RemoveBgError("invalid_parameters", "Invalid parameters", f"{name} must be a string.")


def improvement_submit(*, account: Account, fields: dict, files: dict) -> Improvement:
    """POST /v1.0/improve once admitted and parsed: one image (read or downloaded only now),
    counted against REMOVEBG_IMPROVE_RATE_LIMIT, kept once per distinct image."""
    image = image_given(file=files.get("image_file"), b64=_text(fields, "image_file_b64"),
                        url=_text(fields, "image_url"))
    if image is None:
        raise RemoveBgError("missing_source", "No image given", "Please provide the source image in the image_url, "
                            "image_file or image_file_b64 parameter.")
    rate_limit(group="remove.bg improvement submissions", code="improve_rate_limited", account=account,
               rate=settings.REMOVEBG_IMPROVE_RATE_LIMIT)
    data = image_read(image)
    upload = files.get("image_file")
    filename = _text(fields, "image_filename") or (upload.name if upload is not None else "")
    return improvement_store(account=account, data=data, tag=_text(fields, "tag") or "", filename=filename)
