"""Models, edge refinement, bg-remove-fallback, fm=json and URL limits, through the endpoint."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from rendering.jobs import bg_remove_job_process
from rendering.models import BgRemoveJob
from sources.models import Source

pytestmark = pytest.mark.django_db


def cutout_of(client, url):
    first = client.get(url)
    assert first.status_code == 202, first.content
    job = bg_remove_job_process(job_id=first.json()["job"])
    response = client.get(url)
    assert response.status_code == 200, response.content
    return job, Image.open(io.BytesIO(b"".join(response.streaming_content)))


def test_source_model_url_override_and_unknown_model(client, source):
    Source.objects.filter(pk=source.pk).update(bg_remove_model="u2net")
    job, image = cutout_of(client, "/render/acme-photos/astronaut.jpg?bg-remove=true")
    assert job.model == "u2net" and image.mode == "RGBA"
    job2, _ = cutout_of(client, "/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-model=u2netp")
    assert job2.model == "u2netp" and job2.id != job.id
    # Not provisioned: ignored, the source's default (u2net) is used — and its job already exists.
    again = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-model=isnet-anime")
    assert again.status_code == 200
    assert BgRemoveJob.objects.count() == 2


def test_post_process_refinement_gives_a_clean_binary_mask(client, source):
    Source.objects.filter(pk=source.pk).update(bg_remove_refinement="post-process")
    job, image = cutout_of(client, "/render/acme-photos/astronaut.jpg?bg-remove=true")
    assert job.refinement == "post-process" and job.inferences == 1
    alpha = np.asarray(image.getchannel("A"))
    plain_source = Source.objects.get(pk=source.pk)
    assert set(np.unique(alpha)) <= {0, 255} or np.mean((alpha > 0) & (alpha < 255)) < 0.02
    assert plain_source.bg_remove_refinement == "post-process"


def test_alpha_matting_within_budget_and_past_it(client, source, settings):
    Source.objects.filter(pk=source.pk).update(bg_remove_refinement="alpha-matting")
    settings.BG_REMOVE_MATTING_SECONDS = 0.001
    job, image = cutout_of(client, "/render/acme-photos/chelsea.png?bg-remove=true")
    assert job.status == "done" and "plain mask was used" in job.note
    assert image.mode == "RGBA" and job.inferences == 1


def test_fallback_serves_the_plain_image_until_the_cutout_is_done(client, source):
    url = "/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-fallback=true"
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "no-store" and response["X-Bg-Remove-Status"] == "processing"
    job = BgRemoveJob.objects.get()
    bg_remove_job_process(job_id=job.id)
    done = client.get(url)
    assert done["Content-Type"] == "image/png" and done["Cache-Control"].startswith("public")
    assert "X-Bg-Remove-Status" not in done


def test_fm_json_gives_metadata(client, source):
    response = client.get("/render/acme-photos/astronaut.jpg?fm=json")
    assert response["Content-Type"] == "application/json"
    meta = json.loads(b"".join(response.streaming_content))
    assert meta["PixelWidth"] == 512 and meta["PixelHeight"] == 512 and meta["Content-Type"] == "image/jpeg"


def test_url_over_8000_characters_is_414(client, source):
    response = client.get("/render/acme-photos/astronaut.jpg?txt=" + "a" * 8000)
    assert response.status_code == 414 and response.json()["error"]["code"] == "uri_too_long"


def test_bad_base64_is_400(client, source):
    response = client.get("/render/acme-photos/astronaut.jpg?mark64=not+base64==")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_parameter"


def test_invalid_values_are_ignored_never_5xx(client, source):
    for query in ["w=abc", "q=150", "fit=bogus", "dpr=-3", "h=0", "crop=nowhere", "bg=zzz", "fm=tiff", "mark-alpha=x"]:
        response = client.get(f"/render/acme-photos/astronaut.jpg?{query}")
        assert response.status_code == 200, (query, response.content)
