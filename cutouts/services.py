"""Background-removal jobs: one per image, enqueued once, processed once, with a readable end.

Services decide when a job needs a message; the entry points (views, APIs, admin) publish it
(cutouts/queueing.py), so this module never imports the tasks that call it.
"""

import io
import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from PIL import Image

from core.errors import ForbiddenError, ServiceError
from core.metrics import ORIGIN_ERRORS
from core.storage import storage_put
from cutouts.admission import bg_remove_admission_lock, bg_remove_admit, bg_remove_count
from cutouts.encoding import cutout_png
from cutouts.metrics import INFERENCES, JOB_SECONDS, JOBS
from cutouts.models import BgRemoveJob
from cutouts.remover import cutout, inference_size
from cutouts.removers import remover_get
from cutouts.signals import bg_remove_job_ended
from imaging.decode import (
    DECODERS,
    EXIF_ORIENTATION,
    NotAnImageError,
    image_check_bg_removable,
    image_check_structure,
    image_decode,
    image_sniff,
)
from sources.models import Source
from sources.origins import OriginError, origin_for

logger = logging.getLogger(__name__)
Status = BgRemoveJob.Status


class BgRemoveNotEnabledError(ForbiddenError):
    code = "bg_remove_not_enabled"
    default_message = (
        "Background removal is not enabled for this source; ask your account manager to enable it."
    )


class TransientJobError(Exception):
    """Worth another try later (origin 5xx, storage hiccup); the task retries with backoff.

    Out of bg_remove_job_process it carries `wait`: the job's backoff, when its message is due.
    """

    wait = 0.0


class JobInterruptedError(Exception):
    """The database went away mid-job (or before the claim): neither a crash nor a retry of the
    job. The task sends its message again after a backoff, carrying `release`, the claim to put
    back (None when it was put back already or never made), so the job returns to the queue once
    the database answers and the message then runs it."""

    def __init__(self, release: dict | None):
        super().__init__("the database is unavailable")
        self.release = release


# What a lost or refused database connection raises (psycopg's "the connection is closed" is an
# InterfaceError); a bug in a query (ProgrammingError, IntegrityError) is not among them.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


class JobLeaseHeldError(Exception):
    """Another worker holds the job; try again once its lease could have run out."""

    def __init__(self, wait: float):
        super().__init__(f"job is held by another worker for {wait:.0f}s more")
        self.wait = wait


# A job whose worker kept dying: not tried again on a request, only after a purge or a manager's retry.
WORKER_DIED = "bg_remove_worker_died"


class JobFailedError(ServiceError):
    """A request for an image whose job failed answers that failure's status and reason."""

    def __init__(self, message, *, status, code, retry_after=None):
        super().__init__(message, code=code, retry_after=retry_after)
        self.status_code = status


# --- Request side ------------------------------------------------------------------------------

class Ensured(NamedTuple):
    job: BgRemoveJob
    # The job needs a message on the broker (new, retried after a failure, or its message lost):
    # the caller publishes it (cutouts/queueing.py), after its transaction commits.
    queue: bool


def bg_remove_job_ensure(*, source: Source, path: str, model: str, refinement: str = "clean-edges") -> Ensured:
    """The image's job, created (and to be queued) by the first request only.

    New work passes admission (429) and is inserted under the admission lock, so the ceilings
    hold under parallel first requests; of concurrent first requests for one image, the first
    inserts and enqueues, the others read its row (the unique constraint stays the last word).
    """
    identity = {"source": source, "path": path, "model": model, "refinement": refinement}
    job = BgRemoveJob.objects.filter(**identity).first()
    if job is None:
        try:
            with transaction.atomic():
                bg_remove_admission_lock()
                job = BgRemoveJob.objects.filter(**identity).first()
                if job is not None:
                    return Ensured(job, False)  # Another request's, committed while this one waited.
                bg_remove_admit(account=source.account)
                job = BgRemoveJob.objects.create(**identity, enqueued_at=timezone.now())
                bg_remove_count(account=source.account)
        except IntegrityError:
            return Ensured(BgRemoveJob.objects.get(**identity), False)
        return Ensured(job, True)

    now = timezone.now()
    queue = False
    if job.status == Status.FAILED:
        # A failed job is tried again after a while, so a fixed origin file recovers unaided; not
        # one that kept killing its worker, or each request could take down workers again.
        overdue = job.finished_at <= now - timedelta(seconds=settings.BG_REMOVE_FAILED_RETRY_AFTER)
        if overdue and job.error_code != WORKER_DIED:
            with transaction.atomic():
                bg_remove_admission_lock()
                bg_remove_admit(account=source.account)
                queue = _requeue(job, Q(status=Status.FAILED, finished_at=job.finished_at))
    elif job.status == Status.QUEUED and job.enqueued_at is None:
        # Publishing its message failed (the broker was down): this request sends it again. Other
        # losses (a broker that lost messages, a dead worker) are the sweep's (bg_remove_jobs_unsent),
        # which counts what the queue holds instead of guessing per job.
        queue = bool(BgRemoveJob.objects.filter(pk=job.pk, enqueued_at=None).update(enqueued_at=now))
    job.refresh_from_db()
    return Ensured(job, queue)


def _requeue(job, condition) -> bool:
    return bool(
        BgRemoveJob.objects.filter(condition, pk=job.pk).update(
            status=Status.QUEUED, error_status=None, error_code="", error_message="", crashes=0, retries=0,
            run_after=None, started_at=None, finished_at=None, lease_expires_at=None, enqueued_at=timezone.now(),
        )
    )


def bg_remove_job_unqueued(*, job: BgRemoveJob) -> None:
    """Publishing the job's message failed: the next request or sweep sends it again."""
    bg_remove_jobs_unqueued(ids=[job.pk])


def bg_remove_jobs_unqueued(*, ids: list) -> None:
    BgRemoveJob.objects.filter(pk__in=ids).update(enqueued_at=None)


def bg_remove_job_raise_failure(job: BgRemoveJob) -> None:
    if not job.error_status or job.error_status >= 500:
        # Our side failed (after the worker's own retries): a client may try again later.
        raise JobFailedError(job.error_message or "Background removal failed.", status=503,
                             code=job.error_code or "bg_remove_failed", retry_after=settings.BG_REMOVE_FAILED_RETRY_AFTER)
    raise JobFailedError(job.error_message, status=job.error_status, code=job.error_code)


# --- Worker side -------------------------------------------------------------------------------

def bg_remove_job_claim(*, job_id) -> BgRemoveJob | None:
    """Marks a job running for this worker and returns it, or None when there is nothing to do.

    A message means "run one job" (there is one message per job, so the counts match), chosen in
    this order: a job whose worker is gone (the message's own first, then any other: a killed
    process's message may have named another job than the one it ran, so waiting for the right
    name could wait forever), taken over, or failed as a poison job after BG_REMOVE_MAX_ATTEMPTS
    deaths; else the oldest runnable queued job of the account served least recently
    (round-robin across accounts, so one tenant's backlog never makes the others wait behind it);
    else nothing, or JobLeaseHeldError when the message's own job is held or backing off (the
    message then waits for it). Claims are conditional updates: a duplicate or a late message
    runs no job twice.
    """
    now = timezone.now()
    claim = {
        "status": Status.RUNNING, "started_at": now, "attempts": F("attempts") + 1,
        "claimed_by": _worker_identity(), "run_after": None,
        "lease_expires_at": now + timedelta(seconds=settings.BG_REMOVE_JOB_LEASE),
    }
    for abandoned in _abandoned(now, first=job_id):
        if _take_over(abandoned, claim):
            return BgRemoveJob.objects.select_related("source__account").get(pk=abandoned.pk)
    for _ in range(5):  # Another worker may claim the pick first; then pick again.
        pick = _fair_next(now)
        if pick is None:
            break
        if BgRemoveJob.objects.filter(pk=pick, status=Status.QUEUED).update(**claim):
            return BgRemoveJob.objects.select_related("source__account").get(pk=pick)
    named = BgRemoveJob.objects.filter(pk=job_id).first()  # Read last: the common path never needs it.
    if named is None or named.status in (Status.DONE, Status.FAILED):
        return None  # Done, failed or purged already: a duplicate message.
    if named.status == Status.QUEUED:
        # Only its backoff keeps it (or another worker just took it): the message waits for it.
        wait = (named.run_after - now).total_seconds() if named.run_after else 0
        raise JobLeaseHeldError(max(wait, 1))
    if named.lease_expires_at is None:
        return None
    raise JobLeaseHeldError(max((named.lease_expires_at - now).total_seconds(), 1))


# Least recently served account first, then its oldest job. Served: its latest start in the last
# hour (older counts as never). One statement, both databases (NULLS FIRST: PostgreSQL, SQLite 3.30+);
# raw SQL because the ORM would evaluate the per-account maximum once per queued row.
_FAIR_NEXT_SQL = """
WITH runnable AS (
    SELECT j.id, j.created_at, s.account_id FROM {job} j JOIN {source} s ON s.id = j.source_id
    WHERE j.status = %s AND (j.run_after IS NULL OR j.run_after <= %s)
), served AS (
    SELECT s.account_id, MAX(j.started_at) AS last FROM {job} j JOIN {source} s ON s.id = j.source_id
    WHERE j.started_at >= %s AND s.account_id IN (SELECT account_id FROM runnable)
    GROUP BY s.account_id
)
SELECT r.id FROM runnable r LEFT JOIN served ON served.account_id = r.account_id
ORDER BY served.last ASC NULLS FIRST, r.created_at ASC LIMIT 1
"""


def _fair_next(now):
    sql = _FAIR_NEXT_SQL.format(job=BgRemoveJob._meta.db_table, source=Source._meta.db_table)
    with connection.cursor() as cursor:
        adapt = connection.ops.adapt_datetimefield_value
        cursor.execute(sql, [Status.QUEUED.value, adapt(now), adapt(now - timedelta(hours=1))])
        row = cursor.fetchone()
    return row and BgRemoveJob._meta.pk.to_python(row[0])


def _abandoned(now, first=None) -> list[BgRemoveJob]:
    """Running jobs nobody is running any more: the lease ran out (the worker stopped renewing
    it), or the holder was a process on this machine that is gone (a killed pool process, whose
    message comes back at once). One indexed query: running jobs are few (one per pool process)."""
    local = Q(claimed_by__startswith=f"{socket.gethostname()}:")
    running = BgRemoveJob.objects.filter(Q(lease_expires_at__lte=now) | local, status=Status.RUNNING)
    found = [job for job in running.select_related("source__account") if _holder_gone(job, now)]
    return sorted(found, key=lambda job: (str(job.pk) != str(first), job.started_at or now))


def _holder_gone(job: BgRemoveJob, now) -> bool:
    return bool(job.lease_expires_at and job.lease_expires_at <= now) or _holder_is_dead(job.claimed_by)


def _take_over(job: BgRemoveJob, update: dict) -> bool:
    """Gives an abandoned job to `update` (this worker's claim, or the queue) if nobody took it
    first. Its holder's death counts as a crash (at BG_REMOVE_MAX_ATTEMPTS the job fails as a
    poison job) unless the holder is known alive: a lease that ran out under a live process means
    the database or the store stalled it, which says nothing about the image."""
    held = BgRemoveJob.objects.filter(pk=job.pk, status=Status.RUNNING, claimed_by=job.claimed_by,
                                      lease_expires_at=job.lease_expires_at)
    deaths = job.crashes + (0 if _holder_is_alive(job.claimed_by) else 1)
    if deaths > job.crashes and deaths >= settings.BG_REMOVE_MAX_ATTEMPTS:
        if held.update(crashes=deaths, lease_expires_at=None):
            logger.warning("bg-remove job %s given up: its worker died %d times", job.pk, deaths)
            job.crashes = deaths
            bg_remove_job_fail(job=job, status=422, code=WORKER_DIED, message=(
                f"Background removal of this image made the worker die {deaths} times (killed, or out "
                "of memory), so it is not tried again; purge the image to try once more."))
        return False
    if not held.update(**update, crashes=deaths):
        return False  # Another message or the sweep took it first.
    logger.warning("bg-remove job %s taken over from %s worker %s", job.pk,
                   "dead" if deaths > job.crashes else "stalled", job.claimed_by)
    return True


def _worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_pid(holder: str) -> int | None:
    """The holder's process id when it ran on this machine, else None (another host's is unknown)."""
    host, _, pid = holder.rpartition(":")
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def _holder_is_dead(holder: str) -> bool:
    pid = _holder_pid(holder)
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _holder_is_alive(holder: str) -> bool:
    return _holder_pid(holder) is not None and not _holder_is_dead(holder)


# --- The sweep (beat: cutouts/tasks.py bg_remove_jobs_sweep_run) ---------------------------------

def bg_remove_jobs_reclaim() -> int:
    """Puts running jobs whose worker is gone back in the queue (as a claim would take them over,
    counting a crash only for a dead holder), so none waits for a message naming it. Returns how
    many."""
    now = timezone.now()
    back = {"status": Status.QUEUED, "lease_expires_at": None, "run_after": None, "enqueued_at": None}
    return sum(_take_over(job, back) for job in _abandoned(now))


def bg_remove_jobs_unsent(*, waiting: int) -> list:
    """The jobs to publish a message for, marked sent: as many as runnable queued jobs outnumber
    the `waiting` messages of the job queue (a message runs whichever job is fairest, so only the
    count tells whether one is missing: a failed publish, a broker that lost messages, a dead
    worker's reserved ones). Jobs sent within the last sweep interval are not re-sent (their
    message may be on its way); the oldest unsent first. A miscount costs at most a message
    that finds nothing to do."""
    now = timezone.now()
    runnable = BgRemoveJob.objects.filter(Q(run_after__isnull=True) | Q(run_after__lte=now), status=Status.QUEUED)
    missing = runnable.count() - waiting
    if missing <= 0:
        return []
    settled = now - timedelta(seconds=settings.BG_REMOVE_SWEEP_SECONDS)
    ids = list(runnable.filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=settled))
               .order_by(F("enqueued_at").asc(nulls_first=True), "created_at").values_list("pk", flat=True)[:missing])
    BgRemoveJob.objects.filter(pk__in=ids).update(enqueued_at=now)
    return ids


# --- Running a job -------------------------------------------------------------------------------

def bg_remove_job_release(*, job_id, holder: str, attempts: int) -> bool:
    """Puts back in the queue the job this claim (holder, attempts) left running when the database
    went away mid-job: not a crash, not a retry of the job."""
    return bool(BgRemoveJob.objects.filter(pk=job_id, status=Status.RUNNING, claimed_by=holder, attempts=attempts)
                .update(status=Status.QUEUED, lease_expires_at=None, run_after=None))


def bg_remove_job_process(*, job_id, release: dict | None = None) -> BgRemoveJob | None:
    """Fetches the origin, checks it, runs the model once, stores the cutout, records the end.

    With the database unreachable at any point, raises JobInterruptedError (the task retries
    with backoff); `release` is such an interrupted run's claim, put back first."""
    try:
        if release:
            bg_remove_job_release(**release)
        job = bg_remove_job_claim(job_id=job_id)
    except DATABASE_UNAVAILABLE as exc:
        logger.warning("bg-remove message for job %s: database unavailable: %s", job_id, exc)
        raise JobInterruptedError(release) from None
    if job is None:
        return None
    try:
        with _LeaseKept(job):
            return _run(job)
    except DATABASE_UNAVAILABLE as exc:
        logger.warning("bg-remove job %s interrupted: database unavailable: %s", job.pk, exc)
        release = {"job_id": str(job.pk), "holder": job.claimed_by, "attempts": job.attempts}
        try:
            connection.close_if_unusable_or_obsolete()
            if bg_remove_job_release(**release):
                release = None
        except DATABASE_UNAVAILABLE:
            pass  # Still down: the retried message puts it back.
        raise JobInterruptedError(release) from None


def _run(job: BgRemoveJob) -> BgRemoveJob:
    try:
        return _process(job)
    except DATABASE_UNAVAILABLE:
        raise
    except TransientJobError as exc:
        retries = job.retries + 1
        if retries > settings.BG_REMOVE_MAX_RETRIES:
            return bg_remove_job_fail_transient(job_id=job.pk, message=str(exc))
        # Back to the queue after a backoff of 2, 4, 8, … seconds (capped at five minutes); the
        # message is retried as long, and any message may run the job once it is due.
        exc.wait = min(2 ** retries, 300)
        BgRemoveJob.objects.filter(pk=job.pk).update(
            status=Status.QUEUED, lease_expires_at=None, retries=retries,
            run_after=timezone.now() + timedelta(seconds=exc.wait))
        raise
    except Exception:
        logger.exception("bg-remove job %s failed unexpectedly", job.id)
        return bg_remove_job_fail(job=job, status=500, code="internal_error",
                                  message="Background removal failed because of an internal error.")


class _LeaseKept:
    """Renews this worker's lease on the job every third of BG_REMOVE_JOB_LEASE while it runs, so
    a job longer than the lease (a big image, alpha matting, a slow origin) is not taken over by
    another worker. A worker that dies stops renewing, and the lease runs out as before; a
    database that goes away for a while only skips renewals."""

    def __init__(self, job: BgRemoveJob):
        self.job_pk, self.holder = job.pk, job.claimed_by
        self.lease = settings.BG_REMOVE_JOB_LEASE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job.pk}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()

    def _run(self):
        try:
            while not self._stop.wait(max(self.lease / 3, 0.5)):
                try:
                    renewed = BgRemoveJob.objects.filter(pk=self.job_pk, status=Status.RUNNING,
                                                         claimed_by=self.holder).update(
                        lease_expires_at=timezone.now() + timedelta(seconds=self.lease))
                except DATABASE_UNAVAILABLE as exc:
                    logger.warning("bg-remove job %s: lease not renewed: %s", self.job_pk, exc)
                    connection.close()  # A new connection at the next renewal.
                    continue
                if not renewed:
                    return  # Finished, failed or taken over meanwhile: nothing left to keep.
        finally:
            connection.close()  # This thread's own connection.


def _process(job: BgRemoveJob) -> BgRemoveJob:
    try:
        # First: a model this worker lacks fails the job with its reason (503 model_not_provisioned),
        # before any fetch; a provisioned one not preloaded is loaded here, once per process.
        remover_get(job.model)
        started = time.monotonic()
        obj = origin_for(job.source).fetch(job.path, max_bytes=settings.ORIGIN_MAX_BYTES)
        fetched = time.monotonic()
        image_check_bg_removable(obj.data)
        image = _decode_for_inference(obj.data)
    except OriginError as exc:
        ORIGIN_ERRORS.labels(kind=exc.code).inc()
        if exc.status_code >= 500:
            raise TransientJobError(exc.message) from exc
        return bg_remove_job_fail(job=job, status=exc.status_code, code=exc.code, message=exc.message)
    except ServiceError as exc:
        return bg_remove_job_fail(job=job, status=exc.status_code, code=exc.code, message=exc.message)

    BgRemoveJob.objects.filter(pk=job.pk).update(inferences=F("inferences") + 1)
    INFERENCES.labels(model=job.model).inc()
    inference_started = time.monotonic()
    result, note = cutout(image, model=job.model, refinement=job.refinement)
    inference_seconds = time.monotonic() - inference_started

    del image  # The photo (40 MB at 10 MP) is not needed while the cutout is encoded.
    # Up-filtered rows deflated fast (cutouts/encoding.py): at 10 MP 0.09 s with ISA-L (0.30 s
    # with zlib) where Pillow's PNG encoder took 0.64 s, for a file about as large.
    data = cutout_png(result)
    name = f"cutouts/{job.source_id}/{job.id}.png"
    try:
        # Whole or not at all, replacing a retried job's earlier cutout: a full disk leaves no
        # short cutout under the job's name.
        name = storage_put(name, data)
    except Exception as exc:  # Storage vendors raise their own types; all are worth a retry.
        raise TransientJobError(f"storing the cutout failed: {exc}") from exc

    done = {
        "status": Status.DONE, "cutout_name": name, "origin_version": obj.version[:200],
        "width": result.width, "height": result.height, "finished_at": timezone.now(),
        "fetch_seconds": fetched - started, "inference_seconds": inference_seconds,
        "lease_expires_at": None, "error_status": None, "error_code": "", "error_message": "", "note": note,
    }
    BgRemoveJob.objects.filter(pk=job.pk).update(**done)
    # After the commit, so a webhook never announces a job the database does not show as done.
    transaction.on_commit(lambda: _ended(job, "job.done"), robust=True)
    elapsed = time.monotonic() - started
    JOBS.labels(state="done").inc()
    JOB_SECONDS.observe(elapsed)
    logger.info("bg-remove job %s done in %.2fs (inference %.2fs)", job.id, elapsed, inference_seconds,
                extra={"job": str(job.id), "account": job.source.account.slug, "source": job.source.slug,
                       "status": "done", "duration_s": round(elapsed, 3), "inference_s": round(inference_seconds, 3)})
    # The row now holds what this worker wrote (it holds the lease): no need to read it back.
    for field, value in done.items():
        setattr(job, field, value)
    job.inferences += 1
    return job


def _decode_for_inference(data: bytes) -> Image.Image:
    """The origin decoded at most at BG_REMOVE_MAX_PIXELS: a large JPEG is decoded in draft mode
    at 1/2, 1/4 or 1/8 of its size (never below the target), so a 49 MP photo never occupies
    49 MP of memory; what remains above the target is resampled down."""
    kind = image_sniff(data)  # JPEG or PNG: image_check_bg_removable passed.
    # Before Pillow reads the header: a JPEG's segments are parsed on open (millions of them in
    # a hostile file cost seconds), so the structure is bounded first, as in image_decode.
    image_check_structure(data, kind)
    try:
        with Image.open(io.BytesIO(data), formats=[DECODERS[kind]]) as header:
            width, height = header.size
            # A JPEG's EXIF is read from its header; other formats' (a PNG's eXIf) only on decode.
            sideways = header.format == "JPEG" and header.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except (OSError, ValueError, Image.DecompressionBombError):
        raise NotAnImageError() from None
    hint = inference_size(width, height)
    if hint is None or width * height > settings.ORIGIN_MAX_PIXELS:
        return image_decode(data)  # Small enough, or refused by the pixel ceiling before any decode.
    image = image_decode(data, at_least=hint[::-1] if sideways else hint)  # at_least is as displayed.
    target = inference_size(image.width, image.height)
    if target is not None:
        # Under 2x after the draft (a 12 MP phone photo is 1.1x), where `reducing_gap` has nothing
        # to reduce: BICUBIC, a quarter cheaper than LANCZOS, within a mean of 0.5/255 of it on
        # sharp detail (bench/README.md, job cost). The box reduction still serves huge PNGs.
        image = image.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return image


def bg_remove_job_fail(*, job: BgRemoveJob, status: int, code: str, message: str) -> BgRemoveJob:
    BgRemoveJob.objects.filter(pk=job.pk).update(
        status=Status.FAILED, error_status=status, error_code=code[:64], error_message=message[:500],
        finished_at=timezone.now(), lease_expires_at=None,
    )
    transaction.on_commit(lambda: _ended(job, "job.failed"), robust=True)
    JOBS.labels(state="failed").inc()
    logger.info("bg-remove job %s failed: %s (%s)", job.id, message, code,
                extra={"job": str(job.id), "account": job.source.account.slug, "source": job.source.slug,
                       "status": "failed", "code": code})
    job.refresh_from_db()
    return job


def _ended(job: BgRemoveJob, event: str) -> None:
    # Other apps (webhooks) subscribe; this app does not know who listens.
    bg_remove_job_ended.send(sender=BgRemoveJob, job_id=job.pk, event=event)


def bg_remove_job_fail_transient(*, job_id, message: str) -> BgRemoveJob | None:
    """The last retry of a transient failure: give up with a reason, as an internal failure."""
    job = BgRemoveJob.objects.select_related("source__account").filter(pk=job_id).first()
    if job is not None:
        job = bg_remove_job_fail(job=job, status=503, code="bg_remove_unavailable",
                                 message=f"Background removal could not complete after retries: {message}")
    return job


def bg_remove_job_retry(*, job: BgRemoveJob) -> bool:
    """An account manager's retry of a failed job: back in the queue (the caller publishes its
    message). False if it had not failed."""
    return _requeue(job, Q(status=Status.FAILED))
