"""Management API for background removal: jobs (pre-warming is rendering/apis.py's: it enters by the
render gate)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import NewestFirstPagination
from cutouts.models import BgRemoveJob
from cutouts.selectors import job_get_for, job_list_for


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
