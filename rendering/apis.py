"""Management API for rendering: purge."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from rendering.store import render_purge
from sources.addresses import render_url_parse
from sources.selectors import source_get_for


class PurgeInputSerializer(serializers.Serializer):
    # Checked by render_url_parse: a rendering URL on any host the platform answers to.
    url = serializers.CharField(required=False, max_length=8000,
                                help_text="A rendering URL; every derived copy of its image is purged.")
    source = serializers.CharField(required=False, help_text="A source's slug: everything cached for it is purged.")

    def validate(self, data):
        if bool(data.get("url")) == bool(data.get("source")):
            raise serializers.ValidationError("Give exactly one of url or source.")
        return data


class PurgeOutputSerializer(serializers.Serializer):
    source = serializers.CharField()
    path = serializers.CharField(allow_null=True)
    renders = serializers.IntegerField(help_text="Derived renders removed.")
    cutouts = serializers.IntegerField(help_text="Background-removal results (jobs and cutouts) removed.")
    files = serializers.IntegerField(help_text="Objects deleted from storage.")


class PurgeApi(APIView):
    @extend_schema(request=PurgeInputSerializer, responses=PurgeOutputSerializer)
    def post(self, request):
        serializer = PurgeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("url"):
            slug, path = render_url_parse(url=data["url"])
        else:
            slug, path = data["source"], None
        source = source_get_for(account=request.user.account, slug=slug)
        result = render_purge(source=source, path=path)
        return Response({"source": source.slug, "path": path, "renders": result.renders,
                         "cutouts": result.cutouts, "files": result.files})


