"""A job's status page, named in a 202's `status_url`."""

from django.urls import reverse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFoundError
from cutouts.models import BgRemoveJob


class JSONOnlyNegotiation(BaseContentNegotiation):
    """`Accept` chooses the image format here, so it must not make DRF answer 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class JobStatusView(APIView):
    """A job's state by its unguessable id, as named in a 202's `status_url`."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = []
    schema = None
    content_negotiation_class = JSONOnlyNegotiation

    def get(self, request, job_id):
        job = BgRemoveJob.objects.filter(pk=job_id).first()
        if job is None:
            raise NotFoundError("No such job.")
        body = {
            "job": str(job.id),
            "status": job.status,
            "path": job.path,
            "model": job.model,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "duration_seconds": job.duration_seconds,
            "inference_seconds": job.inference_seconds,
        }
        if job.error is not None:
            body["error"] = job.error
        response = Response(body)
        response["Cache-Control"] = "no-store"
        return response


def job_status_url(request, job: BgRemoveJob) -> str:
    """The job's status page, on the host the request came to (a 202's and a pre-warm's `status_url`)."""
    return request.build_absolute_uri(reverse("bg-remove-job", kwargs={"job_id": job.id}))
