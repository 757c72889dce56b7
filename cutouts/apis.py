"""Management API for background removal: jobs, and pre-warming cutouts."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ServiceError
from core.pagination import NewestFirstPagination
from cutouts.models import BgRemoveJob
from cutouts.queueing import bg_remove_job_request
from cutouts.selectors import job_get_for, job_list_for
from cutouts.services import BgRemoveNotEnabledError
from cutouts.views import job_status_url
from sources.addresses import render_url_parse
from sources.origins import path_clean
from sources.selectors import source_bg_remove_enabled, source_bg_remove_model, source_get_for

PREWARM_MAX = 100


class JobOutputSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    error = serializers.SerializerMethodField()

    class Meta:
        model = BgRemoveJob
        fields = [
            "id", "source", "path", "model", "refinement", "status", "created_at", "started_at",
            "finished_at", "duration_seconds", "fetch_seconds", "inference_seconds", "attempts",
            "width", "height", "note", "error",
        ]

    def get_error(self, obj) -> dict | None:
        return obj.error


class JobFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=BgRemoveJob.Status.choices, required=False)
    source = serializers.CharField(required=False)
    since = serializers.DateTimeField(required=False)


class JobListApi(APIView):
    pagination_class = NewestFirstPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=BgRemoveJob.Status.values),
            OpenApiParameter("source", OpenApiTypes.STR, description="A source's slug."),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Jobs created at or after."),
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("page_size", OpenApiTypes.INT),
        ],
        responses=JobOutputSerializer(many=True),
    )
    def get(self, request):
        filters = JobFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        query = job_list_for(account=request.user.account, status=data.get("status"),
                             source_slug=data.get("source"), since=data.get("since"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(query, request, view=self)
        return paginator.get_paginated_response(JobOutputSerializer(page, many=True).data)


class JobDetailApi(APIView):
    @extend_schema(responses=JobOutputSerializer)
    def get(self, request, job_id):
        return Response(JobOutputSerializer(job_get_for(account=request.user.account, job_id=job_id)).data)


class PrewarmInputSerializer(serializers.Serializer):
    urls = serializers.ListField(child=serializers.CharField(max_length=8000), required=False, max_length=PREWARM_MAX)
    source = serializers.CharField(required=False)
    paths = serializers.ListField(child=serializers.CharField(max_length=1024), required=False, max_length=PREWARM_MAX)

    def validate(self, data):
        if bool(data.get("urls")) == bool(data.get("source") and data.get("paths")):
            raise serializers.ValidationError("Give either urls, or source with paths.")
        return data


class PrewarmItemSerializer(serializers.Serializer):
    source = serializers.CharField()
    path = serializers.CharField()
    job = serializers.UUIDField(allow_null=True)
    status = serializers.CharField(help_text="The job's status, or `refused` with an error.")
    status_url = serializers.URLField(allow_null=True)
    error = serializers.DictField(allow_null=True)


class PrewarmOutputSerializer(serializers.Serializer):
    jobs = PrewarmItemSerializer(many=True)


class PrewarmApi(APIView):
    @extend_schema(request=PrewarmInputSerializer, responses={202: PrewarmOutputSerializer})
    def post(self, request):
        serializer = PrewarmInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        targets = [render_url_parse(url=url) for url in data["urls"]] if data.get("urls") else [
            (data["source"], path_clean(p.lstrip("/"))) for p in data["paths"]
        ]
        account = request.user.account
        # Every item is checked (its source, the entitlement) before any job is created, so a
        # pre-warm that answers 4xx has started nothing.
        sources = {}
        for slug, _ in targets:
            if slug not in sources:
                sources[slug] = source_get_for(account=account, slug=slug)
                if not source_bg_remove_enabled(source=sources[slug]):
                    raise BgRemoveNotEnabledError()
        items = [_prewarm_one(request, sources[slug], path) for slug, path in targets]
        if not any(item["job"] for item in items):
            # Nothing was started (every item refused by admission, e.g. 429): its status.
            raise _refusal(items[0]["error"])
        return Response({"jobs": items}, status=status.HTTP_202_ACCEPTED)


def _prewarm_one(request, source, path) -> dict:
    item = {"source": source.slug, "path": path, "job": None, "status": "refused", "status_url": None, "error": None}
    try:
        job = bg_remove_job_request(source=source, path=path, model=source_bg_remove_model(source=source),
                                        refinement=source.bg_remove_refinement)
    except ServiceError as exc:
        item["error"] = {"status": exc.status_code, "code": exc.code, "message": exc.message,
                         "retry_after": exc.retry_after}
        return item
    item.update(job=job.id, status=job.status,
                status_url=job_status_url(request, job))
    return item


def _refusal(error: dict) -> ServiceError:
    exc = ServiceError(error["message"], code=error["code"], retry_after=error.get("retry_after"))
    exc.status_code = error["status"]
    return exc
