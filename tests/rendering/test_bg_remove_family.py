"""The rest of imgix's bg-remove family: the transparency threshold, the foreground hints, the
failure-reason header, and (beyond imgix) the alpha matte as an output."""

import io

import numpy as np
import pytest
from PIL import Image

from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from rendering.params import params_parse
from tests.conftest import FIXTURES

pytestmark = pytest.mark.django_db


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def cut_out_png(transparent_share: float) -> bytes:
    """chelsea.png (a photo) with its left `transparent_share` made fully transparent."""
    with Image.open(FIXTURES / "chelsea.png") as image:
        rgba = image.convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, dtype=np.uint8)
    alpha[:, : round(rgba.width * transparent_share)] = 0
    rgba.putalpha(Image.fromarray(alpha))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("share", "query", "as_is"), [
    (0.5, "", True),  # A product shot that comes cut out: above the default 0.2.
    (0.1, "", False),  # Mostly opaque: removal runs.
    (0.5, "&bg-remove-transparency-threshold=0.6", False),
    (0.1, "&bg-remove-transparency-threshold=0.05", True),
    (0.5, "&bg-remove-transparency-threshold=1", False),
])
def test_an_origin_transparent_enough_is_served_as_it_is(client, source, origin_root, share, query, as_is):
    data = cut_out_png(share)
    (origin_root / "photos" / "shot.png").write_bytes(data)
    response = client.get(f"/render/acme-photos/shot.png?bg-remove=true{query}")
    if as_is:
        assert response.status_code == 200, response.content
        assert not BgRemoveJob.objects.exists()
        served = Image.open(io.BytesIO(body_of(response)))
        assert served.mode == "RGBA"
        assert np.array_equal(np.asarray(served), np.asarray(Image.open(io.BytesIO(data))))
        # No model made it, and the response says so (as a hit of the same render does).
        for answer in (response, client.get(f"/render/acme-photos/shot.png?bg-remove=true{query}")):
            assert answer["X-Bg-Remove-Model"] == "none", answer.headers
            assert answer["X-Bg-Remove-Status"] == "origin-transparent"
    else:
        assert response.status_code == 202, response.content
        assert BgRemoveJob.objects.count() == 1


def test_an_opaque_png_goes_to_the_worker(client, source):
    assert client.get("/render/acme-photos/chelsea.png?bg-remove=true").status_code == 202


def test_foreground_hints_share_the_one_job_and_a_hint_we_cannot_use_is_a_400(client, source):
    plain = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true").json()["job"]
    # Hard edges are made from the same cutout; an unreadable value keeps the default, as for
    # any parameter.
    for hint in ("bg-remove-semi-transparency=false", "bg-remove-fg-type=auto", "bg-remove-fg-type=nonsense"):
        response = client.get(f"/render/acme-photos/astronaut.jpg?bg-remove=true&{hint}")
        assert response.status_code == 202 and response.json()["job"] == plain, hint
    car = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-fg-type=car")
    assert car.status_code == 400 and "bg-remove-fg-type=car" in car.json()["error"]["message"]


def test_a_fallback_says_why_in_a_header(client, source, origin_root):
    processing = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-fallback=true")
    assert processing.status_code == 200
    assert processing["X-Bg-Remove-Status"] == "processing"
    assert processing["X-Bg-Remove-Failure-Reason"] == "Processing background removal request."

    # A GIF: the job fails (background removal takes JPG or PNG), with a reason a user can read.
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buf, "GIF")
    (origin_root / "photos" / "anim.gif").write_bytes(buf.getvalue())
    job_id = client.get("/render/acme-photos/anim.gif?bg-remove=true").json()["job"]
    while (job := BgRemoveJob.objects.get(pk=job_id)).status not in ("done", "failed"):
        bg_remove_job_process(job_id=job_id)  # The fairest queued job first: the astronaut's, then this.
    assert job.status == BgRemoveJob.Status.FAILED and job.error_message
    without = client.get("/render/acme-photos/anim.gif?bg-remove=true")
    assert without.status_code == job.error_status  # No fallback asked: the job's failure.
    fallback = client.get("/render/acme-photos/anim.gif?bg-remove=true&bg-remove-fallback=true&fm=png")
    assert fallback.status_code == 200
    assert fallback["X-Bg-Remove-Status"] == "failed" and fallback["Cache-Control"] == "no-store"
    assert fallback["X-Bg-Remove-Failure-Reason"] == " ".join(job.error_message.split())
    assert Image.open(io.BytesIO(body_of(fallback))).size == (40, 30)


def test_the_matte_is_the_cutouts_alpha(client, source):
    url = "/render/acme-photos/astronaut.jpg?bg-remove=true"
    bg_remove_job_process(job_id=client.get(url).json()["job"])
    cutout = Image.open(io.BytesIO(body_of(client.get(url))))
    response = client.get(url + "&bg-remove-output=mask")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    matte = Image.open(io.BytesIO(body_of(response)))
    assert matte.mode == "L" and matte.size == cutout.size
    assert np.array_equal(np.asarray(matte), np.asarray(cutout.getchannel("A")))
    # Sized like any render, and as a JPEG too (a matte has no alpha of its own).
    small = client.get(url + "&bg-remove-output=mask&w=100&fm=jpg")
    assert small.status_code == 200 and Image.open(io.BytesIO(body_of(small))).size == (100, 100)


def test_semi_transparency_false_leaves_no_partly_transparent_pixel():
    """bg-remove-semi-transparency=false: the cutout's edges hard (each pixel kept or removed whole)."""
    from PIL import Image

    from rendering.operations.bgremove import HARD_EDGES as STAGE
    from rendering.stage import StageContext

    cutout = Image.new("RGBA", (4, 1))
    cutout.putdata([(10, 20, 30, 0), (10, 20, 30, 100), (10, 20, 30, 200), (10, 20, 30, 255)])
    soft = STAGE.apply(cutout, params_parse("bg-remove=true"), StageContext())
    assert soft is cutout  # The default keeps the model's edges.
    hard = STAGE.apply(cutout, params_parse("bg-remove=true&bg-remove-semi-transparency=false"), StageContext())
    assert [hard.getpixel((x, 0))[3] for x in range(4)] == [0, 0, 255, 255]
    assert cutout.getpixel((1, 0))[3] == 100  # The input is not painted on.
    assert params_parse("bg-remove=true&bg-remove-semi-transparency=false").canonical() != (
        params_parse("bg-remove=true").canonical())
    # Without bg-remove it acts on nothing and keys nothing.
    assert params_parse("bg-remove-semi-transparency=false").canonical() == params_parse("").canonical()
    # The matte is cut the same way.
    matte = Image.frombytes("L", (4, 1), bytes([0, 100, 200, 255]))
    hard = STAGE.apply(matte, params_parse("bg-remove=true&bg-remove-output=mask&bg-remove-semi-transparency=false"),
                       StageContext())
    assert list(hard.getdata()) == [0, 0, 255, 255]


def test_hard_edges_stay_hard_at_any_size_and_turn(client, source):
    """The cut comes after the resize and the rotation, which would otherwise soften it again."""
    first = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true")
    bg_remove_job_process(job_id=first.json()["job"])
    for query in ("w=200", "w=333&dpr=1.5", "rot=30", "w=120&bg-remove-output=mask"):
        url = f"/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-semi-transparency=false&{query}&fm=png"
        response = client.get(url)
        assert response.status_code == 200, response.content
        image = Image.open(io.BytesIO(body_of(response)))
        values = np.asarray(image.getchannel("A") if image.mode == "RGBA" else image.convert("L"))
        assert set(np.unique(values)) <= {0, 255}, query
        soft = Image.open(io.BytesIO(body_of(client.get(url.replace("semi-transparency=false", "semi-transparency=true")))))
        soft_values = np.asarray(soft.getchannel("A") if soft.mode == "RGBA" else soft.convert("L"))
        assert ((soft_values > 0) & (soft_values < 255)).any(), query  # Soft by default at that size.


def test_a_foreground_hint_we_cannot_use_is_refused():
    from rendering.operations.unsupported import UnsupportedParameterError

    assert params_parse("bg-remove=true&bg-remove-fg-type=auto") == params_parse("bg-remove=true")
    with pytest.raises(UnsupportedParameterError, match="bg-remove-fg-type=car"):
        params_parse("bg-remove=true&bg-remove-fg-type=car")
