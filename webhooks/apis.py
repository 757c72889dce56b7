"""Management API for webhooks: register, list, read, delete, and see their deliveries."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import NewestFirstPagination
from webhooks.models import Webhook, WebhookDelivery
from webhooks.selectors import webhook_delivery_list, webhook_get, webhook_list
from webhooks.services import EVENTS, webhook_create, webhook_delete


class WebhookListApi(APIView):
    class InputSerializer(serializers.Serializer):
        url = serializers.URLField(max_length=500, help_text="Where events are POSTed; https.")
        events = serializers.ListField(
            child=serializers.ChoiceField(choices=EVENTS), required=False, min_length=1,
            help_text="The events to receive; all of them when left out.",
        )

        class Meta:
            ref_name = "WebhookInput"

    class OutputSerializer(serializers.ModelSerializer):
        events = serializers.ListField(child=serializers.ChoiceField(choices=EVENTS))

        class Meta:
            model = Webhook
            fields = ["id", "url", "events", "active", "created_at"]
            ref_name = "Webhook"

    class CreatedSerializer(OutputSerializer):
        secret = serializers.CharField(
            help_text="Signs every delivery (X-Cutout-Signature). Shown only in this response; store it now."
        )

        class Meta:
            model = Webhook
            fields = ["id", "url", "events", "active", "created_at", "secret"]
            ref_name = "WebhookCreated"

    @extend_schema(operation_id="webhooks_list", responses=OutputSerializer(many=True))
    def get(self, request):
        return Response(self.OutputSerializer(webhook_list(account=request.user.account), many=True).data)

    @extend_schema(operation_id="webhooks_create", request=InputSerializer, responses={201: CreatedSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook = webhook_create(account=request.user.account, **serializer.validated_data)
        return Response(self.CreatedSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    @extend_schema(operation_id="webhooks_retrieve", responses=WebhookListApi.OutputSerializer)
    def get(self, request, webhook_id):
        webhook = webhook_get(account=request.user.account, webhook_id=webhook_id)
        return Response(WebhookListApi.OutputSerializer(webhook).data)

    @extend_schema(operation_id="webhooks_destroy", responses={204: None})
    def delete(self, request, webhook_id):
        webhook_delete(webhook=webhook_get(account=request.user.account, webhook_id=webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryListApi(APIView):
    pagination_class = NewestFirstPagination  # Newest first, by cursor, like jobs.

    class OutputSerializer(serializers.ModelSerializer):
        job = serializers.UUIDField(source="job_id", allow_null=True, read_only=True,
                                    help_text="The job the event is about; null once the job is purged.")

        class Meta:
            model = WebhookDelivery
            fields = ["id", "event", "job", "status", "attempts", "response_status", "last_error",
                      "created_at", "last_attempt_at", "delivered_at"]
            ref_name = "WebhookDelivery"

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        parameters=[OpenApiParameter("cursor", OpenApiTypes.STR), OpenApiParameter("page_size", OpenApiTypes.INT)],
        responses=OutputSerializer(many=True),
    )
    def get(self, request, webhook_id):
        webhook = webhook_get(account=request.user.account, webhook_id=webhook_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(webhook_delivery_list(webhook=webhook), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)
