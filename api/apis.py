"""The management API's index (where each resource and the docs are) and its schema, for anyone (no data)."""

import threading

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
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


class SchemaApi(SpectacularAPIView):
    """The OpenAPI schema, built once per process and language: it is public (no data in it) and
    the same for every caller until the code changes, and building it costs about 30 ms of CPU, a
    price an anonymous caller could otherwise make the server pay on every request."""

    _built: dict = {}
    _lock = threading.Lock()

    def _get_schema_response(self, request):
        version = self.api_version or request.version or self._get_version_parameter(request)
        # drf-spectacular made the request's `lang` the active language; one Django has no
        # catalog for is served in the default, so the key has one entry per supported language.
        try:
            language = translation.get_supported_language_variant(translation.get_language())
        except LookupError:
            language = translation.get_supported_language_variant(settings.LANGUAGE_CODE)
        key = (version, language, self.serve_public)
        schema = self._built.get(key)
        if schema is None:
            with self._lock:
                schema = self._built.get(key)
                if schema is None:
                    generator = self.generator_class(urlconf=self.urlconf, api_version=version, patterns=self.patterns)
                    schema = self._built[key] = generator.get_schema(request=request, public=self.serve_public)
        return Response(data=schema, headers={
            "Content-Disposition": f'inline; filename="{self._get_filename(request, version)}"'})
