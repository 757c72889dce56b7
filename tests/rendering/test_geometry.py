"""Exact geometry: output sizes are imgix's arithmetic on the whole image, whatever the decoder
does. A large JPEG is decoded at 1/2, 1/4 or 1/8 of its size for a small output, and those
decodes round (2000×1333 at 1/4 is 500×334 pixels for 500×333.25 of picture)."""

import io

import numpy as np
import pytest
from PIL import Image

from imaging.decode import image_decode, image_geometry
from rendering.operations.resize import FITS, resize_apply
from rendering.params import params_parse
from rendering.services import _decode_size
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def photo_2000x1333() -> bytes:
    """A real photograph (astronaut, NASA, public domain) at a size whose reductions round."""
    with Image.open(FIXTURES / "astronaut.jpg") as image:
        big = image.convert("RGB").resize((2000, 1333), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def render(data: bytes, query: str, *, reduced: bool) -> Image.Image:
    params = params_parse(query)
    image = image_decode(data, at_least=_decode_size(params, "jpg") if reduced else None)
    return image, resize_apply(image, params)


SIZES = ["w=300&h=200", "w=333", "h=199", "w=301&h=167", "w=250&h=250", "w=333&h=100", "w=120&h=400",
         "w=200&h=133&dpr=1.5", "w=499"]


# fit=facearea zooms into a face: it decodes the whole image (tests/rendering/test_faces.py).
@pytest.mark.parametrize("fit", sorted(set(FITS) - {"facearea"}))
@pytest.mark.parametrize("size", SIZES)
def test_every_fit_mode_gives_the_whole_images_arithmetic(photo_2000x1333, fit, size):
    query = f"{size}&fit={fit}"
    decoded, reduced = render(photo_2000x1333, query, reduced=True)
    _, whole = render(photo_2000x1333, query, reduced=False)
    assert reduced.size == whole.size
    # Not vacuous: these sizes decode at reduced scale, and the scale rounds.
    assert decoded.size != (2000, 1333) and image_geometry(decoded).box != decoded.size
    # The same picture: the window into the reduced pixels is where it is in the whole image.
    difference = np.abs(np.asarray(reduced, dtype=np.int16) - np.asarray(whole, dtype=np.int16)).mean()
    assert difference < 4, f"{query}: mean difference {difference:.1f} of 255"


@pytest.mark.parametrize(("query", "expected"), [
    ("w=300&h=200", (300, 200)),
    ("w=333", (333, 222)),
    ("h=199", (299, 199)),
    ("w=300&h=200&fit=crop", (300, 200)),
    ("w=333&h=199&fit=max", (299, 199)),
])
def test_the_sizes_a_user_computes(photo_2000x1333, query, expected):
    # imgix, by hand: clip keeps 2000:1333, matching the tighter side (w=333 → h=round(221.94)).
    _, reduced = render(photo_2000x1333, query, reduced=True)
    assert reduced.size == expected


def test_an_image_made_from_a_reduced_decode_has_its_own_geometry(photo_2000x1333):
    decoded, _ = render(photo_2000x1333, "w=300&h=200", reduced=True)
    assert image_geometry(decoded).size == (2000, 1333)
    cropped = decoded.crop((0, 0, 100, 100))
    assert image_geometry(cropped).size == (100, 100)


def test_sideways_photos_keep_their_displayed_geometry(photo_2000x1333):
    with Image.open(io.BytesIO(photo_2000x1333)) as image:
        exif = image.getexif()
        exif[0x0112] = 6  # Stored landscape, displayed portrait.
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    decoded, reduced = render(buf.getvalue(), "w=200", reduced=True)
    _, whole = render(buf.getvalue(), "w=200", reduced=False)
    assert image_geometry(decoded).size == (1333, 2000)
    assert reduced.size == whole.size == (200, 300)


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "expected"), [
    ("w=300&h=200", (300, 200)), ("w=333", (333, 222)), ("h=199", (299, 199)),
    ("w=300&h=200&fit=fill&fill-color=fff", (300, 200)), ("w=301&h=167&fit=crop", (301, 167)),
])
def test_through_the_rendering_endpoint(client, source, origin_root, photo_2000x1333, query, expected):
    (origin_root / "photos" / "big.jpg").write_bytes(photo_2000x1333)
    response = client.get(f"/render/{source.slug}/big.jpg?{query}&fm=png")
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert Image.open(io.BytesIO(body)).size == expected
