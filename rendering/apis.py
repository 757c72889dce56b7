"""Management API for rendering: purge, and pre-warming cutouts (through the render gate)."""

from urllib.parse import urlsplit

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ServiceError
from cutouts.queueing import bg_remove_job_request
from cutouts.views import job_status_url
from rendering.gate import Door, Entry, render_gate
from rendering.store import render_purge
from sources.addresses import render_url_parse
from sources.selectors import source_bg_remove_model, source_get, source_get_for


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




# --- Pre-warm ------------------------------------------------------------------------------------

PREWARM_MAX = 100


class PrewarmInputSerializer(serializers.Serializer):
    urls = serializers.ListField(child=serializers.CharField(max_length=8000), required=False, max_length=PREWARM_MAX,
                                 help_text="Rendering URLs; each one's query may name a model (bg-remove-model).")
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
        targets = [(*render_url_parse(url=url), urlsplit(url).query) for url in data["urls"]] if data.get("urls") \
            else [(data["source"], path, "") for path in data["paths"]]
        account = request.user.account
        # Every item passes the render gate (source kind, the key's account, expires,
        # entitlement, rate) before any job is created, so a pre-warm that answers 4xx has
        # started nothing.
        passes = [render_gate(Entry(door=Door.PREWARM, source=source_get(slug=slug), path=path.lstrip("/"),
                                    raw_query=query, account=account, bg_remove=True))
                  for slug, path, query in targets]
        items = [_prewarm_one(request, gate) for gate in passes]
        if not any(item["job"] for item in items):
            # Nothing was started (every item refused by admission, e.g. 429): its status.
            raise _refusal(items[0]["error"])
        return Response({"jobs": items}, status=status.HTTP_202_ACCEPTED)


def _prewarm_one(request, gate) -> dict:
    source = gate.source
    item = {"source": source.slug, "path": gate.path, "job": None, "status": "refused", "status_url": None,
            "error": None}
    try:
        job = bg_remove_job_request(
            source=source, path=gate.path,
            model=source_bg_remove_model(source=source, requested=gate.params.bg_remove_model),
            refinement=source.bg_remove_refinement)
    except ServiceError as exc:
        item["error"] = {"status": exc.status_code, "code": exc.code, "message": exc.message,
                         "retry_after": exc.retry_after}
        return item
    item.update(job=job.id, status=job.status, status_url=job_status_url(request, job))
    return item


def _refusal(error: dict) -> ServiceError:
    exc = ServiceError(error["message"], code=error["code"], retry_after=error.get("retry_after"))
    exc.status_code = error["status"]
    return exc
