"""Management API for the account itself and its API keys."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.limits import account_limits
from accounts.models import ApiKey
from accounts.selectors import api_key_get_for, api_key_list_for
from accounts.services import ApiKeyScopeError, api_key_create, api_key_revoke
from core.errors import BadRequestError


class AccountOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.CharField()
    bg_remove_enabled = serializers.BooleanField(help_text="The account-wide entitlement; sources may override it.")
    render_rate_limit = serializers.CharField(help_text="Rendering requests per period.")
    bg_remove_rate_limit = serializers.CharField(help_text="New background-removal jobs per period.")
    bg_remove_max_pending = serializers.IntegerField(help_text="Unfinished background-removal jobs allowed at once.")


class AccountApi(APIView):
    @extend_schema(responses=AccountOutputSerializer)
    def get(self, request):
        account = request.user.account
        limits = account_limits(account)
        return Response(AccountOutputSerializer({
            "name": account.name,
            "slug": account.slug,
            "bg_remove_enabled": account.bg_remove_enabled,
            "render_rate_limit": limits.render_rate,
            "bg_remove_rate_limit": limits.bg_remove_rate,
            "bg_remove_max_pending": limits.bg_remove_max_pending,
        }).data)


class ApiKeyOutputSerializer(serializers.ModelSerializer):
    revoked = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "expires_at", "revoked", "revoked_at", "last_used_at", "created_at"]

    def get_revoked(self, obj) -> bool:
        return obj.revoked_at is not None


class ApiKeyCreatedSerializer(ApiKeyOutputSerializer):
    key = serializers.CharField(help_text="The secret key. Shown only in this response; store it now.")

    class Meta(ApiKeyOutputSerializer.Meta):
        fields = [*ApiKeyOutputSerializer.Meta.fields, "key"]


class ApiKeyInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKey.Scope.choices), min_length=1)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyListApi(APIView):
    @extend_schema(responses=ApiKeyOutputSerializer(many=True))
    def get(self, request):
        return Response(ApiKeyOutputSerializer(api_key_list_for(account=request.user.account), many=True).data)

    @extend_schema(request=ApiKeyInputSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request):
        serializer = ApiKeyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            api_key, key = api_key_create(account=request.user.account, granted_by=request.user.scopes,
                                          **serializer.validated_data)
        except ApiKeyScopeError as exc:
            raise BadRequestError(str(exc)) from None
        api_key.key = key
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(APIView):
    @extend_schema(responses=ApiKeyOutputSerializer)
    def get(self, request, key_id: int):
        return Response(ApiKeyOutputSerializer(api_key_get_for(account=request.user.account, key_id=key_id)).data)

    @extend_schema(responses={200: ApiKeyOutputSerializer}, description="Revokes the key (idempotent).")
    def delete(self, request, key_id: int):
        api_key = api_key_revoke(api_key=api_key_get_for(account=request.user.account, key_id=key_id))
        return Response(ApiKeyOutputSerializer(api_key).data)
