"""Models, edge refinement, bg-remove-fallback, fm=json and URL limits, through the endpoint."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from sources.models import Source

pytestmark = pytest.mark.django_db


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def cutout_of(client, url):
    first = client.get(url)
    assert first.status_code == 202, first.content
    job = bg_remove_job_process(job_id=first.json()["job"])
    response = client.get(url)
    assert response.status_code == 200, response.content
    return job, Image.open(io.BytesIO(body_of(response)))


def test_source_model_url_override_and_unknown_model(client, source):
    Source.objects.filter(pk=source.pk).update(bg_remove_model="u2net")
    job, image = cutout_of(client, "/render/acme-photos/astronaut.jpg?bg-remove=true")
    assert job.model == "u2net" and image.mode == "RGBA"
    job2, _ = cutout_of(client, "/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-model=u2netp")
    assert job2.model == "u2netp" and job2.id != job.id
    # Each response names the model that made its cutout, and the refinement.
    served = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true")
    assert (served["X-Bg-Remove-Model"], served["X-Bg-Remove-Refinement"]) == ("u2net", "clean-edges")
    assert client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-model=u2netp&w=50")[
        "X-Bg-Remove-Model"] == "u2netp"
    # Not provisioned, or not a model at all: a 400 naming it and the provisioned ones, never
    # another model's cutout in its place; no job is made.
    for name, says in (("isnet-anime", "is not provisioned on this platform"),
                       ("no-such-model", "is not a model this platform knows")):
        refused = client.get(f"/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-model={name}")
        assert refused.status_code == 400, refused.content
        body = refused.json()
        assert body["error"]["code"] == "bg_remove_model_unavailable", body
        assert f"bg-remove-model={name} {says}" in body["error"]["message"]
        assert "the provisioned models are: u2netp, u2net" in body["error"]["message"]
    assert BgRemoveJob.objects.count() == 2
    # Without bg-remove the render has no cutout and says nothing of models.
    assert "X-Bg-Remove-Model" not in client.get("/render/acme-photos/astronaut.jpg?w=40")


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
    meta = json.loads(body_of(response))
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


def body_image(response):
    return Image.open(io.BytesIO(body_of(response)))


def test_size_through_the_endpoint(client, source):
    crop = body_image(client.get("/render/acme-photos/chelsea.png?w=100&h=100&fit=crop"))
    assert crop.size == (100, 100)
    clip = body_image(client.get("/render/acme-photos/chelsea.png?w=100&h=100"))
    assert clip.size == (100, 67)  # 451×300 fitted inside 100×100.
    dpr = body_image(client.get("/render/acme-photos/chelsea.png?w=100&dpr=2"))
    assert dpr.size == (200, 133)
    ratio = body_image(client.get("/render/acme-photos/chelsea.png?w=0.5"))
    assert ratio.width == 226


def test_bg_fills_the_removed_background(client, source):
    job, cutout = cutout_of(client, "/render/acme-photos/astronaut.jpg?bg-remove=true")
    transparent = next((x, y) for x in range(0, 512, 4) for y in range(0, 512, 4)
                       if cutout.getpixel((x, y))[3] == 0)
    opaque = (256, 110)
    red = body_image(client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&bg=f00"))
    assert red.getpixel(transparent)[:3] == (255, 0, 0)
    assert all(abs(a - b) <= 2 for a, b in zip(red.getpixel(opaque)[:3], cutout.getpixel(opaque)[:3]))
    jpg = body_image(client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&fm=jpg"))
    assert jpg.mode == "RGB" and all(c > 245 for c in jpg.getpixel(transparent))  # Flattened on white.
    half = body_image(client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&bg=80ff0000&fm=png"))
    r, g, b, a = half.getpixel(transparent)
    assert (r, g, b) == (255, 0, 0) and abs(a - 128) <= 1  # Alpha first: 80 is the alpha.


def test_mark_at_the_aligned_corner_with_alpha(client, source, origin_root):
    Image.new("RGB", (20, 10), (0, 0, 255)).save(origin_root / "photos" / "mark.png")
    base = body_image(client.get("/render/acme-photos/astronaut.jpg?fm=png"))
    marked = body_image(client.get("/render/acme-photos/astronaut.jpg?fm=png&mark=mark.png&mark-alpha=50"))
    # Default alignment bottom,right with a 5 px pad: the mark covers x 487–506, y 497–506.
    inside, outside = (500, 500), (480, 500)
    expected = tuple(round((c + blue) / 2) for c, blue in zip(base.getpixel(inside)[:3], (0, 0, 255)))
    assert all(abs(a - b) <= 2 for a, b in zip(marked.getpixel(inside)[:3], expected))
    assert marked.getpixel(outside) == base.getpixel(outside)
    top_left = body_image(client.get("/render/acme-photos/astronaut.jpg?fm=png&mark=mark.png&mark-align=top,left"))
    assert top_left.getpixel((10, 8))[:3] == (0, 0, 255)


def test_same_meaning_shares_one_cached_render_and_repeats_do_no_work(client, source, origin_root):
    from rendering.models import Render

    first = client.get("/render/acme-photos/astronaut.jpg?w=100&h=50&fit=crop")
    same = client.get("/render/acme-photos/astronaut.jpg?h=50&fit=crop&ixlib=python-4.0.0&w=100&width=100")
    assert first["ETag"] == same["ETag"] and Render.objects.count() == 1
    (origin_root / "photos" / "astronaut.jpg").unlink()  # A hit must not need the origin.
    assert client.get("/render/acme-photos/astronaut.jpg?w=100&h=50&fit=crop").status_code == 200
    assert Render.objects.count() == 1


def test_auto_compress_picks_by_transparency(client, source):
    plain = client.get("/render/acme-photos/chelsea.png?auto=compress")
    assert plain["Content-Type"] == "image/jpeg"
    cutout_of(client, "/render/acme-photos/astronaut.jpg?bg-remove=true")
    cut = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&auto=compress&fm=jpg")
    assert cut["Content-Type"] == "image/png"


MARKED = "/render/acme-photos/astronaut.jpg?w=64&mark64="


@pytest.mark.parametrize("value", [
    "Y2hl!bHNl!YS5w!bmc!",  # Characters outside the alphabet, which a lenient decoder skips…
    "Y2hl+bHNl+YS5w+bmc+",  # …`+` of standard base64, a space once the query is decoded…
    "Y2hl%0AbHNl%0AYS5w%0Abmc%0A",  # …and line breaks.
    "Y2hlbHNlYS5wbmd",  # Non-zero bits after the last byte (RFC 4648 §3.5): `c` is the only spelling.
    "Y2hlbHNlYS5wbmcAA",  # A length no encoder writes (1 more than a multiple of 4)…
    "Y",
    "Y2hlbHNlYS5wbmc=",  # …padding…
    "Y2hlbHNlYS5wbmc/",  # …and the standard alphabet.
    "wyhhYmM",  # Not UTF-8: a lone lead byte…
    "7aCALnBuZw",  # …a surrogate…
    "wK8ucG5n",  # …and an overlong form.
])
def test_base64_that_is_not_strict_base64url_is_400_whatever_it_decodes_to(client, source, value):
    assert client.get(MARKED + "Y2hlbHNlYS5wbmc").status_code == 200  # chelsea.png, as the mark.
    response = client.get(MARKED + value)
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_parameter", value
    assert "mark64" in response.json()["error"]["message"]


def test_every_parameter_named_with_64_is_strict_base64url(client, source):
    url = "/render/acme-photos/astronaut.jpg?w=64&fm64="
    response = client.get(url + "d2VicA")
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    for value in ("d2VicB", "d2Vi!!!!cA", "d2Vi+cA"):  # webp, leniently.
        response = client.get(url + value)
        assert response.status_code == 400 and "fm64" in response.json()["error"]["message"], value
