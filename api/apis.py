"""The management API's index: where each resource and the docs are, for anyone (no data)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

# The collections a client starts from, by URL name; a route with a parameter is reached from one
# of them. tests/api/test_index.py checks that every such route of the URL conf is listed.
RESOURCES = ["account", "keys", "sources", "jobs", "purge", "prewarm", "usage", "webhooks"]
AUTHENTICATION = ("An API key: `Authorization: Bearer <key>`. Or, signed in to the admin as an account manager "
                  "or a superuser: the session, with the account named by `?account=<slug>` or `X-Account: <slug>` "
                  "(writes also need the CSRF token, as the docs' \"Try it out\" sends it).")


class IndexOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    authentication = serializers.CharField(help_text="How to call the API.")
    resources = serializers.DictField(child=serializers.URLField(), help_text="Each resource's absolute URL, by name.")
    schema = serializers.URLField(help_text="The OpenAPI description (YAML; JSON with `?format=json`).")
    docs = serializers.URLField(help_text="Swagger UI, with \"Try it out\".")
    redoc = serializers.URLField(help_text="ReDoc.")


class IndexApi(APIView):
    # Public and the same for everyone: a wrong or missing key does not stop a client finding its way.
    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = []

    @extend_schema(auth=[], operation_id="index", tags=["index"], responses=IndexOutputSerializer, summary="The API's resources and documentation")
    def get(self, request):
        def url(name):
            return request.build_absolute_uri(reverse(f"api:{name}"))

        return Response(IndexOutputSerializer({
            "name": "Cutout management API",
            "version": "1",
            "authentication": AUTHENTICATION,
            "resources": {name: url(name) for name in RESOURCES},
            "schema": url("schema"),
            "docs": url("docs"),
            "redoc": url("redoc"),
        }).data)
