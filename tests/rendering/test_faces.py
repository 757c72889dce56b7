"""Faces (rendering/operations/faces.py): the finder, crop=faces and fit=facearea with faceindex
and facepad (rendering/operations/resize.py), face-blur and face-pixel, faces=1 with fm=json.

The photographs: the astronaut (tests/fixtures, one face), and two without a human face: the
cat (tests/fixtures/chelsea.png) and the Aitzgorri range (demo/origin/aitzgorri.jpg)."""

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imaging.decode import image_decode
from rendering.operations.faces import STAGE, face_region, faces_area, faces_find
from rendering.operations.resize import RESIZE, output_size, resize_apply
from rendering.params import params_parse
from rendering.stage import StageContext

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = StageContext()
# Where the astronaut's face is in the 512×512 photograph (her brows to her chin, ear to ear).
FACE_CENTRE = (225, 115)


def photo(path="tests/fixtures/astronaut.jpg") -> Image.Image:
    with Image.open(ROOT / path) as image:
        return image.convert("RGB")


def landscape(size=(1536, 512)) -> Image.Image:
    return photo("demo/origin/aitzgorri.jpg").resize(size, Image.Resampling.LANCZOS)


def with_astronauts(*lefts, size=(1536, 512)) -> Image.Image:
    """The landscape with the astronaut pasted at each of `lefts` (x): one face each."""
    canvas = landscape(size)
    for left in lefts:
        canvas.paste(photo(), (left, 0))
    return canvas


def centre(face) -> tuple[float, float]:
    return (face[0] + face[2] / 2, face[1] + face[3] / 2)


def inside(point, box) -> bool:
    return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]


def detail(image: Image.Image, box=None) -> float:
    """Mean absolute difference between neighbouring pixels: what a blur lowers."""
    grey = np.asarray((image.crop(box) if box else image).convert("L"), dtype=np.float64)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


def sized(image, query):
    p = params_parse(query)
    return STAGE.apply(resize_apply(image, p), p, CONTEXT)


# --- The finder ---------------------------------------------------------------------------------

def test_the_astronauts_face_is_found_and_kept_on_the_image():
    image = photo()
    faces = faces_find(image)
    assert len(faces) == 1
    x, y, w, h = faces[0]
    assert inside(FACE_CENTRE, faces[0]) and 60 < w < 160 and 60 < h < 160
    assert image.faces is faces  # Memoised on the image: a second question detects nothing.
    assert faces_find(image) is faces
    # A new image (a crop) asks afresh, in its own coordinates.
    shifted = faces_find(image.crop((100, 0, 512, 512)))
    assert len(shifted) == 1 and abs(shifted[0][0] - (x - 100)) < 8


@pytest.mark.parametrize("path", ["tests/fixtures/chelsea.png", "demo/origin/aitzgorri.jpg"])
def test_a_photograph_without_a_face_has_none(path):
    assert faces_find(photo(path)) == ()


def test_faces_run_left_to_right_and_faceindex_picks_one():
    faces = faces_find(with_astronauts(0, 1024))
    assert len(faces) == 2
    assert centre(faces[0])[0] < 512 < 1024 < centre(faces[1])[0]
    assert faces_area(faces, 2) == faces[1] and faces_area(faces, 3) is None
    both = faces_area(faces)
    assert both[0] == faces[0][0] and both[0] + both[2] == faces[1][0] + faces[1][2]


def test_a_reduced_decode_finds_the_face_where_the_whole_image_has_it():
    big = photo().resize((2048, 2048), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    reduced = image_decode(buf.getvalue(), at_least=(300, 300))
    whole = image_decode(buf.getvalue())
    assert reduced.size[0] < 2048  # Not vacuous: decoded at reduced scale.
    (a,), (b,) = faces_find(reduced), faces_find(whole)
    assert inside(centre(a), b) and abs(a[2] - b[2]) < 0.15 * b[2]
    assert inside((FACE_CENTRE[0] * 4, FACE_CENTRE[1] * 4), a)  # The image's own coordinates.


def test_the_worst_case_is_bounded():
    """A smooth noise the cascades reject late, at 8192²: the finder works on a copy ≤768 px and
    stops scanning past its budget."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).resize((8192, 8192),
                                                                                       Image.Resampling.BICUBIC)
    start = time.process_time()
    faces_find(image)
    assert time.process_time() - start < 3.0


# --- crop=faces ---------------------------------------------------------------------------------

def test_crop_faces_centres_the_window_on_the_face():
    image = with_astronauts(1024)
    face = faces_find(image)[0]
    out = sized(image, "w=300&h=300&fit=crop&crop=faces")
    assert out.size == (300, 300)
    # The window is 512×512 (the whole height), centred on the face: it holds the face.
    left = round(centre(face)[0] - 256)
    expected = image.crop((left, 0, left + 512, 512)).resize((300, 300), Image.Resampling.LANCZOS)
    assert mean_difference(out, expected) < 3
    found = faces_find(out)
    assert len(found) == 1 and abs(centre(found[0])[0] - 150) < 20
    # A centred crop (512–1024) leaves the face out.
    assert faces_find(sized(image, "w=300&h=300&fit=crop")) == ()


@pytest.mark.parametrize("others", ["", "right", "left,bottom", "entropy"])
def test_without_a_face_crop_faces_is_the_other_crop_values(others):
    image = landscape()
    query = "w=300&h=100&fit=crop&crop="
    with_faces = sized(image, query + ",".join(v for v in ("faces", others) if v))
    assert with_faces.tobytes() == sized(image, query + others).tobytes()


def test_faceindex_chooses_the_face_crop_faces_centres_on():
    image = with_astronauts(0, 1024)
    first, second = faces_find(image)
    query = "w=200&h=300&fit=crop&crop=faces"  # A 341×512 window.
    for index, face in ((1, first), (2, second)):
        out = sized(image, f"{query}&faceindex={index}")
        left = min(max(round(centre(face)[0] - 512 * 200 / 300 / 2), 0), 1536 - 341)
        expected = image.crop((left, 0, left + 341, 512)).resize((200, 300), Image.Resampling.LANCZOS)
        assert mean_difference(out, expected) < 4, index
    # All faces: the window is centred on the box around both.
    both = sized(image, query)
    left = round(centre(faces_area((first, second)))[0] - 512 * 200 / 300 / 2)
    middle = image.crop((left, 0, left + 341, 512)).resize((200, 300), Image.Resampling.LANCZOS)
    assert mean_difference(both, middle) < 4
    # Past the last face there is none: the other crop values.
    assert sized(image, f"{query},left&faceindex=3").tobytes() == sized(image, f"{query.replace('faces', 'left')}"
                                                                              ).tobytes()


# --- fit=facearea -------------------------------------------------------------------------------

@pytest.mark.parametrize("facepad", [1.0, 2.0])
def test_facearea_is_the_face_region_padded_and_sized(facepad):
    image = photo()
    (x, y, w, h), = faces_find(image)
    out = sized(image, f"w=200&h=200&fit=facearea&facepad={facepad}")
    assert out.size == (200, 200)
    cx, cy = x + w / 2, y + h / 2
    w, h = w * facepad, h * facepad
    expected = image.resize((200, 200), Image.Resampling.LANCZOS, box=(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    assert mean_difference(out, expected) < 3
    found = faces_find(out)  # The face fills the output, less with more padding.
    assert len(found) == 1 and found[0][2] > 200 / facepad * 0.7


def test_facearea_widens_to_the_outputs_shape_and_stays_inside_the_image():
    image = photo()
    out = sized(image, "w=400&h=100&fit=facearea&facepad=3")
    assert out.size == (400, 100)
    # Three faces wide (~290 px) is 73 px high at 4:1; at 512 wide the window is the whole width.
    out = sized(image, "w=400&h=100&fit=facearea&facepad=10")
    (x, y, w, h), = faces_find(image)
    top = min(max(y + h / 2 - 64, 0), 512 - 128)
    expected = image.resize((400, 100), Image.Resampling.LANCZOS, box=(0, top, 512, top + 128))
    assert mean_difference(out, expected) < 3


def test_facearea_without_a_face_is_crop_with_the_crop_values():
    image = landscape()
    for crop in ("", "&crop=left", "&crop=entropy"):
        facearea = sized(image, f"w=300&h=200&fit=facearea{crop}")
        assert facearea.tobytes() == sized(image, f"w=300&h=200&fit=crop{crop}").tobytes()


@pytest.mark.parametrize("query", ["w=200&h=200&fit=facearea", "w=120&h=300&fit=facearea&facepad=4",
                                   "w=300&fit=facearea", "w=50&h=50&fit=crop&crop=faces",
                                   "w=300&h=100&face-blur=50&face-pixel=20"])
def test_size_is_what_apply_gives(query):
    image = photo()
    p = params_parse(query)
    out = STAGE.apply(resize_apply(image, p), p, CONTEXT)
    assert STAGE.size(output_size(image.size, p), p, CONTEXT) == out.size


def test_facearea_decodes_the_whole_image_and_crop_faces_may_reduce():
    assert RESIZE.decode_size(params_parse("w=100&h=100&fit=facearea")) is None
    assert RESIZE.decode_size(params_parse("w=100&h=100&fit=crop&crop=faces")) == (100, 100)


# --- face-blur, face-pixel ----------------------------------------------------------------------

def test_face_blur_lowers_detail_in_the_face_only():
    image = photo()
    region = face_region(faces_find(image)[0], image.size)
    soft = STAGE.apply(image, params_parse("face-blur=20"), CONTEXT)
    strong = STAGE.apply(image, params_parse("face-blur=100"), CONTEXT)
    assert detail(strong, region) < detail(soft, region) < 0.8 * detail(image, region)
    assert detail(strong, region) < 0.3 * detail(image, region)
    # Outside the face, every pixel is the photograph's.
    outside = np.asarray(image).copy(), np.asarray(strong).copy()
    for pixels in outside:
        pixels[region[1]:region[3], region[0]:region[2]] = 0
    assert np.array_equal(*outside)


def test_face_pixel_makes_blocks_of_the_face_only():
    image = photo()
    (x, y, w, h), = faces_find(image)
    region = face_region((x, y, w, h), image.size)
    out = STAGE.apply(image, params_parse("face-pixel=100"), CONTEXT)
    block = round(max(w, h) * 0.25)
    pixels = np.asarray(out)[region[1]:region[1] + block, region[0]:region[0] + block]
    assert (pixels == pixels[0, 0]).all()  # One block: one colour.
    assert not np.array_equal(np.asarray(out)[region[1]:region[3], region[0]:region[2]],
                              np.asarray(image)[region[1]:region[3], region[0]:region[2]])
    outside = np.asarray(image).copy(), np.asarray(out).copy()
    for pixels in outside:
        pixels[region[1]:region[3], region[0]:region[2]] = 0
    assert np.array_equal(*outside)


def test_face_blur_keeps_alpha_and_leaves_a_faceless_image_alone():
    image = photo().convert("RGBA")
    out = STAGE.apply(image, params_parse("face-blur=50"), CONTEXT)
    assert out.mode == "RGBA" and out.getchannel("A").getextrema() == (255, 255)
    faceless = landscape()
    assert STAGE.apply(faceless, params_parse("face-blur=50&face-pixel=50"), CONTEXT) is faceless
    assert STAGE.apply(image, params_parse("faces=1"), CONTEXT) is image  # faces=1 is for fm=json.


# --- Parameters ---------------------------------------------------------------------------------

def test_values_are_clamped_and_aliases_read():
    assert params_parse("face-blur=500").face_blur == 100
    assert params_parse("face-pixelate=30").face_pixel == 30
    assert params_parse("facepad=0.2").facepad == 1.0 and params_parse("facepad=40").facepad == 10.0
    assert params_parse("faceindex=0").faceindex == 1
    assert params_parse("faceindex=two").faceindex is None
    assert params_parse("f=facearea&w=10").fit == "facearea"


@pytest.mark.parametrize(("query", "same_as"), [
    # faceindex and facepad act only where faces are used; faces=1 only with fm=json.
    ("w=100&h=100&fit=crop&faceindex=2", "w=100&h=100&fit=crop"),
    ("w=100&h=100&fit=crop&crop=faces&facepad=3", "w=100&h=100&fit=crop&crop=faces"),
    ("fit=facearea&faceindex=2", ""),
    ("w=100&faces=1", "w=100"),
    ("w=100&h=100&fit=facearea&crop=faces,left", "w=100&h=100&fit=facearea&crop=left"),
    ("w=100&h=100&fit=facearea&facepad=1", "w=100&h=100&fit=facearea"),
])
def test_what_cannot_act_does_not_key_the_cache(query, same_as):
    assert params_parse(query).canonical() == params_parse(same_as).canonical()


@pytest.mark.parametrize(("query", "other"), [
    ("w=100&h=100&fit=crop&crop=faces&faceindex=2", "w=100&h=100&fit=crop&crop=faces"),
    ("w=100&h=100&fit=facearea&facepad=2", "w=100&h=100&fit=facearea"),
    ("w=100&h=100&fit=facearea", "w=100&h=100&fit=crop"),
    ("fm=json&faces=1", "fm=json"),
])
def test_what_acts_keys_the_cache(query, other):
    assert params_parse(query).canonical() != params_parse(other).canonical()


# --- Over HTTP ----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_faces_in_the_json_metadata(client, source):
    plain = client.get(f"/render/{source.slug}/astronaut.jpg?fm=json")
    assert plain.status_code == 200 and "Faces" not in json.loads(plain.getvalue())
    response = client.get(f"/render/{source.slug}/astronaut.jpg?fm=json&faces=1")
    assert response.status_code == 200
    faces = json.loads(response.getvalue())["Faces"]
    assert len(faces) == 1
    bounds = faces[0]["bounds"]
    assert inside(FACE_CENTRE, (bounds["x"], bounds["y"], bounds["width"], bounds["height"]))
    cat = json.loads(client.get(f"/render/{source.slug}/chelsea.png?fm=json&faces=1").getvalue())
    assert cat["Faces"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "without"), [
    ("w=120&h=240&fit=crop&crop=faces", "w=120&h=240&fit=crop"),
    ("w=100&h=100&fit=facearea&facepad=1.5", "w=100&h=100&fit=crop"),
    ("w=200&face-blur=80", "w=200"),
    ("w=200&face-pixelate=60", "w=200"),
])
def test_served_over_http_without_a_fallback_note(client, source, query, without):
    response = client.get(f"/render/{source.slug}/astronaut.jpg?{query}")
    assert response.status_code == 200, response.content
    assert "X-Render-Fallback" not in response
    plain = client.get(f"/render/{source.slug}/astronaut.jpg?{without}")
    assert plain.status_code == 200 and response.getvalue() != plain.getvalue()


@pytest.mark.django_db
def test_redeye_over_http(client, source):
    response = client.get(f"/render/{source.slug}/astronaut.jpg?w=100&auto=redeye")
    assert response.status_code == 200 and "X-Render-Fallback" not in response


# --- auto=redeye --------------------------------------------------------------------------------

def redness(image: Image.Image, box) -> float:
    pixels = np.asarray(image.crop(box), dtype=np.float64)
    return float((pixels[..., 0] - (pixels[..., 1] + pixels[..., 2]) / 2).mean())


def test_redeye_takes_the_red_out_of_the_pupils_only():
    from PIL import ImageDraw

    from rendering.operations.faces import eyes_find

    image = photo()
    face, = faces_find(image)
    eyes = eyes_find(image, face)
    assert len(eyes) == 2
    # Red pupils, as a flash makes them.
    red = image.copy()
    draw = ImageDraw.Draw(red)
    pupils = []
    for x, y, w, h in eyes:
        cx, cy, r = x + w / 2, y + h / 2, w / 6
        pupils.append((round(cx - r), round(cy - r), round(cx + r), round(cy + r)))
        draw.ellipse(pupils[-1], fill=(210, 30, 35))
    out = STAGE.apply(red, params_parse("auto=redeye"), CONTEXT)
    for pupil in pupils:
        assert redness(red, pupil) > 100 and redness(out, pupil) < 20
    # Her lips, the flag's stripes and the suit stay red: nothing outside the eyes changes.
    outside = np.asarray(red).copy(), np.asarray(out).copy()
    for pixels in outside:
        for x, y, w, h in eyes:
            pixels[int(y):int(y + h) + 1, int(x):int(x + w) + 1] = 0
    assert np.array_equal(*outside)
    # Eyes that are not red are left alone.
    assert np.array_equal(np.asarray(STAGE.apply(image, params_parse("auto=redeye"), CONTEXT)), np.asarray(image))


def test_redeye_keys_the_cache_and_is_served():
    assert params_parse("w=100&auto=redeye").canonical() != params_parse("w=100").canonical()
    assert params_parse("w=100&auto=redeye").has_operations and params_parse("auto=redeye").has_operations


def test_an_animations_frames_share_the_first_frames_faces():
    """Each stage runs on every frame (context.memo shared by one animation's frames): faces are
    found once, on the first frame, so a crop does not jump and 300 frames cost one detection."""
    from rendering.operations.resize import RESIZE

    context = StageContext(memo={})
    first, faceless = photo(), landscape((512, 512))
    p = params_parse("w=200&h=300&fit=crop&crop=faces&face-blur=100")
    sized_first = RESIZE.apply(first, p, context)
    sized_faceless = RESIZE.apply(faceless, p, context)
    # The faceless frame is cropped where the first frame's face was, not at its centre.
    still = RESIZE.apply(landscape((512, 512)), p, CONTEXT)
    assert sized_faceless.tobytes() != still.tobytes()
    assert faces_find(faceless) == faces_find(first)  # Shared, not found again.
    STAGE.apply(sized_first, p, context)
    blurred = STAGE.apply(sized_faceless, p, context)  # Blurred where the first frame's face is.
    region = face_region(faces_find(sized_first)[0], sized_first.size)
    assert detail(blurred, region) < 0.5 * detail(sized_faceless, region)


@pytest.mark.django_db
def test_an_animated_gif_of_a_face_over_http(client, source, origin_root):
    from PIL import ImageSequence

    face = photo()
    frames = [face.rotate(0, translate=(dx, 0)) for dx in (0, 6, 12, 18)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (origin_root / "photos" / "face.gif").write_bytes(buf.getvalue())
    response = client.get(f"/render/{source.slug}/face.gif?w=160&h=240&fit=crop&crop=faces&face-blur=100")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    out = [frame.convert("RGB").copy() for frame in ImageSequence.Iterator(Image.open(io.BytesIO(body)))]
    assert len(out) == 4 and out[0].size == (160, 240)
