"""Management API for usage: renders, bytes, cache hits and bg-remove work per day and source."""

import logging
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from sources.selectors import source_get_for
from usage.services import usage_persist, usage_report

logger = logging.getLogger(__name__)

DEFAULT_DAYS = 30
MAX_DAYS = 366


class UsageFilterSerializer(serializers.Serializer):
    since = serializers.DateField(required=False)
    until = serializers.DateField(required=False)
    source = serializers.CharField(required=False, max_length=63)

    def validate(self, data):
        until = data.get("until") or timezone.now().date()
        since = data.get("since") or until - timedelta(days=DEFAULT_DAYS - 1)
        if since > until:
            raise serializers.ValidationError({"since": "since must not be after until."})
        if (until - since).days >= MAX_DAYS:
            raise serializers.ValidationError({"since": f"At most {MAX_DAYS} days at a time."})
        return {**data, "since": since, "until": until}


class UsageTotalsSerializer(serializers.Serializer):
    renders = serializers.IntegerField(help_text="Images served (200, 304 and HEAD); 202s and errors are not renders.")
    bytes_served = serializers.IntegerField(help_text="Image bytes sent; 304s and HEADs send none.")
    cache_hits = serializers.IntegerField(help_text="Renders served from the render cache without image work.")
    bg_remove_jobs = serializers.IntegerField(help_text="Background-removal jobs that ran and finished (done or failed).")
    compute_seconds = serializers.FloatField(help_text="Their time from start to finish, summed.")


class UsageKeySerializer(serializers.Serializer):
    day = serializers.DateField(help_text="A UTC day.")
    source = serializers.CharField(help_text="The source's slug.")


class UsageRowSerializer(UsageKeySerializer, UsageTotalsSerializer):
    pass  # The first base's fields come first: day, source, then the counts.


class UsageOutputSerializer(serializers.Serializer):
    since = serializers.DateField()
    until = serializers.DateField()
    source = serializers.CharField(allow_null=True)
    rows = UsageRowSerializer(many=True, help_text="One per day and source with any usage, oldest first.")
    totals = UsageTotalsSerializer()


class UsageApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATE, description="First day (UTC), default 29 days before `until`."),
            OpenApiParameter("until", OpenApiTypes.DATE, description="Last day (UTC), inclusive; default today."),
            OpenApiParameter("source", OpenApiTypes.STR, description="A source's slug: only its usage."),
        ],
        responses=UsageOutputSerializer,
    )
    def get(self, request):
        filters = UsageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        source = source_get_for(account=request.user.account, slug=data["source"]) if data.get("source") else None
        try:
            usage_persist()  # So the report includes counts not yet moved by the periodic task.
        except Exception:
            # Redis or the database hiccuped: answer with what is persisted (at most a minute old).
            logger.warning("usage: persisting before a read failed", exc_info=True)
        report = usage_report(account=request.user.account, since=data["since"], until=data["until"], source=source)
        return Response(UsageOutputSerializer(report).data)
