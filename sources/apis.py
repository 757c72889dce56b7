"""Management API for sources: list, create, read, update, delete, rotate the signing token."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from sources.models import Source
from sources.selectors import source_bg_remove_enabled, source_get_for, source_list_for
from sources.services import MANAGER_FIELDS, source_create, source_delete, source_token_rotate, source_update


def _caller_rights(request) -> dict:
    """A superuser's session is an operator's; an account manager's changes what the admin lets them."""
    user = request.user.user
    if user is None:
        return {}
    if user.is_superuser:
        return {"operator": True}
    return {"editable": MANAGER_FIELDS}


class SourceOutputSerializer(serializers.ModelSerializer):
    bg_remove_effective = serializers.SerializerMethodField()
    secure_token_count = serializers.SerializerMethodField()

    class Meta:
        model = Source
        fields = [
            "slug", "kind", "base_url", "s3_bucket", "s3_prefix", "s3_region", "s3_endpoint_url",
            "s3_access_key_id", "local_path", "require_signature", "secure_token_count",
            "bg_remove", "bg_remove_effective", "bg_remove_model", "bg_remove_refinement",
            "cache_max_age", "created_at",
        ]

    def get_bg_remove_effective(self, obj) -> bool:
        return source_bg_remove_enabled(source=obj)

    def get_secure_token_count(self, obj) -> int:
        return len(obj.secure_tokens)


class SourceInputSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=63)
    kind = serializers.ChoiceField(choices=Source.Kind.choices)
    base_url = serializers.URLField(required=False, allow_blank=True)
    s3_bucket = serializers.CharField(required=False, allow_blank=True, max_length=63)
    s3_prefix = serializers.CharField(required=False, allow_blank=True, max_length=512)
    s3_region = serializers.CharField(required=False, allow_blank=True, max_length=32)
    s3_endpoint_url = serializers.URLField(required=False, allow_blank=True)
    s3_access_key_id = serializers.CharField(required=False, allow_blank=True, max_length=128)
    s3_secret_access_key = serializers.CharField(required=False, allow_blank=True, max_length=256, write_only=True)
    local_path = serializers.CharField(required=False, allow_blank=True, max_length=512)
    require_signature = serializers.BooleanField(required=False)
    bg_remove_model = serializers.CharField(required=False, allow_blank=True, max_length=32)
    bg_remove_refinement = serializers.ChoiceField(choices=Source.Refinement.choices, required=False)
    cache_max_age = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=10 * 365 * 86400)


class SourceUpdateSerializer(SourceInputSerializer):
    slug = None
    kind = serializers.ChoiceField(choices=Source.Kind.choices, required=False)
    bg_remove = serializers.ChoiceField(
        choices=Source.BgRemove.choices, required=False,
        help_text="Set by an account manager (a staff session); ignored from an API key.",
    )


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The new signing token. Shown once; the previous one stays valid.")
    secure_token_count = serializers.IntegerField()


class SourceListApi(APIView):
    @extend_schema(responses=SourceOutputSerializer(many=True))
    def get(self, request):
        sources = source_list_for(account=request.user.account)
        return Response(SourceOutputSerializer(sources, many=True).data)

    @extend_schema(request=SourceInputSerializer, responses={201: SourceOutputSerializer})
    def post(self, request):
        serializer = SourceInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = source_create(account=request.user.account, operator=_caller_rights(request).get("operator", False),
                               **serializer.validated_data)
        return Response(SourceOutputSerializer(source).data, status=status.HTTP_201_CREATED)


class SourceDetailApi(APIView):
    @extend_schema(responses=SourceOutputSerializer)
    def get(self, request, slug):
        return Response(SourceOutputSerializer(source_get_for(account=request.user.account, slug=slug)).data)

    @extend_schema(request=SourceUpdateSerializer, responses=SourceOutputSerializer)
    def patch(self, request, slug):
        source = source_get_for(account=request.user.account, slug=slug)
        serializer = SourceUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        source = source_update(source=source, **_caller_rights(request), **serializer.validated_data)
        return Response(SourceOutputSerializer(source).data)

    @extend_schema(responses={204: None})
    def delete(self, request, slug):
        source_delete(source=source_get_for(account=request.user.account, slug=slug))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceTokenApi(APIView):
    @extend_schema(request=None, responses={201: TokenOutputSerializer})
    def post(self, request, slug):
        source = source_get_for(account=request.user.account, slug=slug)
        token = source_token_rotate(source=source)
        return Response({"token": token, "secure_token_count": len(source.secure_tokens)}, status=201)
