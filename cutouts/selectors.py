"""Reads for background-removal jobs, scoped by account."""

from core.errors import NotFoundError
from cutouts.models import BgRemoveJob


def job_list_for(*, account, status: str | None = None, source_slug: str | None = None, since=None):
    jobs = BgRemoveJob.objects.select_related("source").filter(source__account=account)
    if status is not None:
        jobs = jobs.filter(status=status)
    if source_slug is not None:
        jobs = jobs.filter(source__slug=source_slug)
    if since is not None:
        jobs = jobs.filter(created_at__gte=since)
    return jobs


def job_get_for(*, account, job_id) -> BgRemoveJob:
    # 404, not 403, so one account cannot probe another's jobs.
    job = job_list_for(account=account).filter(pk=job_id).first()
    if job is None:
        raise NotFoundError("No such job.")
    return job


def job_find(*, source, path: str, model: str, refinement: str) -> BgRemoveJob | None:
    """The image's job if there is one (the job's unique key: source, path, model, refinement)."""
    return BgRemoveJob.objects.filter(source=source, path=path, model=model, refinement=refinement).first()
