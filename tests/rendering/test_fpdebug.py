"""fp-debug: the focal point's crosshair over a rule-of-thirds grid, on a focal-point crop's output."""

import io
import resource
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from rendering.operations.fpdebug import CROSSHAIR, STAGE, fp_debug_apply
from rendering.operations.resize import RESIZE, focal_point_place
from rendering.params import params_parse
from rendering.stage import StageContext

GREY = (100, 100, 100)


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def red(pixel) -> bool:
    return pixel[0] > 200 and pixel[1] < 60


def test_the_crosshair_crosses_at_the_focal_point_over_a_grid_of_thirds():
    image = Image.new("RGB", (300, 200), GREY)
    out = fp_debug_apply(image, (200.0, 50.0))
    assert out.size == image.size and out.mode == "RGB"
    assert image.getpixel((200, 10)) == GREY  # The input is not drawn on.
    # The crosshair: the whole column x=200 and the whole row y=50.
    assert red(out.getpixel((200, 5))) and red(out.getpixel((200, 195)))
    assert red(out.getpixel((5, 50))) and red(out.getpixel((295, 50)))
    # A circle around the point (radius: a twentieth of the shorter side).
    assert red(out.getpixel((200 + 10, 50))) and red(out.getpixel((200, 50 - 10)))
    # The grid: lighter lines at a third and two thirds of each side.
    for point in ((100, 150), (5, 133), (250, 67)):
        assert all(c > g for c, g in zip(out.getpixel(point), GREY, strict=True)), point
    # Nothing else.
    assert out.getpixel((50, 100)) == GREY and out.getpixel((250, 180)) == GREY


def test_transparency_is_kept_and_the_marks_show_on_it():
    image = Image.new("RGBA", (90, 90), (0, 0, 0, 0))
    out = fp_debug_apply(image, (45, 45))
    assert out.mode == "RGBA"
    assert out.getpixel((10, 10)) == (0, 0, 0, 0)
    assert out.getpixel((45, 5))[3] == CROSSHAIR[3] and red(out.getpixel((45, 5)))


def test_a_point_at_the_edge_is_drawn_without_error():
    out = fp_debug_apply(Image.new("L", (40, 30), 100), (40.0, 0.0))
    assert out.mode == "RGB" and red(out.getpixel((39, 20))) and red(out.getpixel((10, 0)))


def test_the_focal_point_lands_in_the_centre_unless_the_crop_meets_an_edge():
    p = params_parse("w=200&h=100&fit=crop&crop=focalpoint&fp-x=0.5&fp-y=0.5")
    assert focal_point_place((1000, 1000), p) == (100.0, 50.0)
    # fp-x=1: the window stops at the right edge, so the point is the output's right edge.
    p = params_parse("w=200&h=100&fit=crop&crop=focalpoint&fp-x=1&fp-y=0.5")
    assert focal_point_place((1000, 1000), p) == (200.0, 50.0)
    # Zoomed in 2×, a point near the top: the window (500×250) stops at the top.
    p = params_parse("w=200&h=100&fit=crop&crop=focalpoint&fp-x=0.5&fp-y=0.05&fp-z=2")
    assert focal_point_place((1000, 1000), p) == (100.0, pytest.approx(20.0))
    assert focal_point_place((1000, 1000), params_parse("w=200&h=100&fit=crop")) is None
    assert focal_point_place((1000, 1000), params_parse("w=200&h=100&fit=crop&crop=entropy,focalpoint")) is None


def test_the_crosshair_is_where_the_focal_point_is_in_the_crop():
    """Mark the focal point in the source; after the crop the crosshair crosses on it."""
    source = Image.new("RGB", (400, 300), GREY)
    source.paste((0, 0, 255), (356, 86, 364, 94))  # A blue square at (0.9, 0.3).
    p = params_parse("w=100&h=100&fit=crop&crop=focalpoint&fp-x=0.9&fp-y=0.3&fp-debug=true")
    cropped = RESIZE.apply(source, p, StageContext())
    out = STAGE.apply(cropped, p, StageContext())
    blue = np.argwhere(np.all(np.asarray(cropped) == (0, 0, 255), axis=-1)).mean(axis=0)  # (row, column)
    rows = np.flatnonzero([red(out.getpixel((2, y))) for y in range(100)])
    columns = np.flatnonzero([red(out.getpixel((x, 2))) for x in range(100)])
    assert abs(rows.mean() - blue[0]) <= 1 and abs(columns.mean() - blue[1]) <= 1
    assert blue[1] > 60  # Off centre: the window met the right edge.
    assert STAGE.size(cropped.size, p, StageContext()) == out.size


@pytest.mark.parametrize("query", [
    "w=100&h=100&fit=crop&fp-debug=true",  # No focal-point crop.
    "w=100&h=100&crop=focalpoint&fp-debug=true",  # fit=clip.
    "fit=crop&crop=focalpoint&fp-debug=true",  # No box to crop to.
    "w=100&h=100&fit=crop&crop=focalpoint&fp-debug=false",
])
def test_without_a_focal_point_crop_nothing_is_drawn_and_the_key_is_the_same(query):
    p = params_parse(query)
    assert not STAGE.active(p)
    assert p.canonical() == params_parse(query.replace("&fp-debug=true", "").replace("&fp-debug=false", "")).canonical()
    image = Image.new("RGB", (10, 10))
    image.focal_point = (5, 5)
    assert STAGE.apply(image, p, StageContext()) is image


def test_fp_debug_keys_the_cache():
    query = "w=100&h=100&fit=crop&crop=focalpoint"
    assert params_parse(f"{query}&fp-debug=true").canonical() != params_parse(query).canonical()
    assert params_parse(f"{query}&fp-debug=1").fp_debug is True
    assert params_parse(f"{query}&fp-debug=maybe").fp_debug is False


def test_fp_debug_over_http(client, source):
    query = "w=200&h=120&fit=crop&crop=focalpoint&fp-x=0.7&fp-y=0.6&fp-z=1.5&fm=png"
    plain = np.asarray(Image.open(io.BytesIO(body_of(client.get(f"/render/{source.slug}/chelsea.png?{query}")))))
    response = client.get(f"/render/{source.slug}/chelsea.png?{query}&fp-debug=true")
    assert response.status_code == 200
    debug = np.asarray(Image.open(io.BytesIO(body_of(response))))
    assert debug.shape == plain.shape
    changed = np.any(debug != plain, axis=-1)
    # The full-height and full-width lines of the crosshair, and the grid: a small part of the image.
    assert changed.all(axis=0).sum() >= 3 and changed.all(axis=1).sum() >= 3
    assert 0.02 < changed.mean() < 0.15
    place = focal_point_place((451, 300), params_parse(query))  # chelsea.png is 451×300.
    assert changed[:, int(place[0])].all() and changed[int(place[1]), :].all()


def test_the_worst_case_is_bounded():
    image = Image.new("RGBA", (8192, 6144), (10, 20, 30, 255))  # 50 megapixels.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    out = fp_debug_apply(image, (4000.0, 3000.0))
    elapsed = time.process_time() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert out.size == image.size and red(out.getpixel((4000, 10)))
    assert elapsed < 3.0 and grown < 600, (elapsed, grown)


def test_the_stage_reads_only_its_own_field_and_the_crop():
    p = SimpleNamespace(fp_debug=True, fit="crop", crop=("focalpoint",), w=None, h=None, ar=(1, 1))
    assert STAGE.active(p)
