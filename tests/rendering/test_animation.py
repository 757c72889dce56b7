"""Animated GIF and WebP origins: frames kept, selected (frame, interval, skip), reordered (reverse),
timed (fps, loop), every stage on every frame, and the caps that refuse a hostile file cheaply."""

import io
import struct
import time

import pytest
from PIL import Image, ImageSequence

from imaging.decode import (
    GIF_MAX_ANIMATION_BLOCKS,
    TooManyFramesError,
    TooManySegmentsError,
    image_animation,
    image_frames,
)
from rendering.operations.animation import STAGE, animation_select
from rendering.params import params_parse
from rendering.stages import EARLY_STAGES

# Six frames, each one colour far from the others (frame i is COLOURS[i]), with a white square
# that moves, so no two frames are alike.
COLOURS = [(255, 0, 0), (0, 160, 0), (0, 0, 255), (255, 200, 0), (160, 0, 160), (0, 200, 200)]
SIZE = (64, 48)
DURATIONS = [100, 200, 100, 300, 100, 200]


def frames(count=6, size=SIZE, alpha=False):
    out = []
    for i in range(count):
        colour = COLOURS[i % len(COLOURS)]
        frame = Image.new("RGBA" if alpha else "RGB", size, (*colour, 255) if alpha else colour)
        frame.paste((255, 255, 255, 255) if alpha else (255, 255, 255), (2 + i * 4, 2, 8 + i * 4, 8))
        if alpha:
            frame.paste((0, 0, 0, 0), (0, size[1] - 10, size[0], size[1]))  # A transparent band at the bottom.
        out.append(frame)
    return out


def animated(fmt="GIF", count=6, size=SIZE, alpha=False, durations=None) -> bytes:
    out = io.BytesIO()
    images = frames(count, size, alpha)
    options = {"lossless": True} if fmt == "WEBP" else {"disposal": 2 if alpha else 1}
    images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=durations or DURATIONS[:count],
                   loop=0, **options)
    return out.getvalue()


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def decoded(response):
    """Each frame of the response as RGBA, with its duration, and the file's loop count."""
    image = Image.open(io.BytesIO(body_of(response)))
    out = [(frame.convert("RGBA").copy(), frame.info.get("duration")) for frame in ImageSequence.Iterator(image)]
    return image, out


def colour_index(frame, xy=(40, 30)) -> int:
    """Which of COLOURS the frame shows (nearest, so lossy WebP still reads right)."""
    pixel = frame.convert("RGB").getpixel(xy)
    return min(range(len(COLOURS)), key=lambda i: sum((a - b) ** 2 for a, b in zip(pixel, COLOURS[i])))


@pytest.fixture
def origins(origin_root):
    photos = origin_root / "photos"
    (photos / "anim.gif").write_bytes(animated("GIF"))
    (photos / "anim.webp").write_bytes(animated("WEBP"))
    (photos / "clear.gif").write_bytes(animated("GIF", alpha=True))
    return photos


def get(client, name, query=""):
    return client.get(f"/render/acme-photos/{name}?{query}")


# --- Parameters ---------------------------------------------------------------------------------------

def test_frame_reads_imgix_ranges():
    assert params_parse("frame=3").frame == (3, 3)
    assert params_parse("frame=2-4").frame == (2, 4)
    assert params_parse("frame=-4").frame == (1, 4)
    assert params_parse("frame=4-").frame == (4, None)
    assert params_parse("frame=5-2").frame == (2, 5)
    assert params_parse("frame=0").frame == (1, 1)  # 1-based: clamped.
    assert params_parse("frame=abc").frame is None  # Unreadable: every frame.


def test_ranges_are_clamped_and_aliases_read():
    p = params_parse("fps=500&loop=-2&skip=0&interval=0&reverse=1")
    assert (p.fps, p.loop, p.skip, p.interval, p.reverse) == (60, 0, 1, 1, True)
    assert params_parse("fps=0").fps == 1


def test_selection_order():
    def select(query, count=10):
        return animation_select(count, params_parse(query))

    assert select("") == list(range(10))
    assert select("interval=3") == [0, 3, 6, 9]  # Every third, from the first.
    assert select("skip=3") == [1, 2, 4, 5, 7, 8]  # Every third dropped, from the first.
    assert select("frame=3-6&reverse=true") == [5, 4, 3, 2]
    assert select("frame=8-") == [7, 8, 9]
    assert select("frame=-2") == [0, 1]
    assert select("frame=20-") == []
    assert select("skip=1") == []


def test_a_still_output_keys_only_the_frame_it_shows():
    def key(query, fmt):
        return params_parse(query).canonical(fmt)

    assert key("frame=1&fps=10&reverse=true", "jpg") == key("", "jpg")
    assert key("frame=3-5&loop=2", "png") == key("frame=3", "png")
    assert key("frame=3&fps=10", "gif") == key("frame=3", "gif")  # One frame: a still, whatever the format.
    assert key("frame=1-", "gif") == key("", "gif")
    assert key("reverse=true", "gif") != key("", "gif")
    assert key("reverse=true", "") != key("", "")  # The origin's format may animate.


def test_trim_is_the_only_stage_that_runs_before_the_budget():
    # The animated path crops every frame to the box trim finds on the first (services._frames_run).
    assert [stage.name for stage in EARLY_STAGES] == ["trim"]
    assert STAGE.pixels is False


# --- Rendering -----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_an_animated_gif_stays_animated(client, source, origins):
    response = get(client, "anim.gif")
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    image, out = decoded(response)
    assert [colour_index(f) for f, _ in out] == [0, 1, 2, 3, 4, 5]
    assert [d for _, d in out] == DURATIONS
    assert image.info.get("loop") == 0  # For ever.
    assert all(f.size == SIZE for f, _ in out)


@pytest.mark.django_db
def test_skip_interval_and_range_choose_the_frames(client, source, origins):
    _, out = decoded(get(client, "anim.gif", "skip=2"))
    assert [colour_index(f) for f, _ in out] == [1, 3, 5]
    _, out = decoded(get(client, "anim.gif", "interval=2"))
    assert [colour_index(f) for f, _ in out] == [0, 2, 4]
    assert [d for _, d in out] == [100, 100, 100]  # Each kept frame keeps its own delay.
    _, out = decoded(get(client, "anim.gif", "frame=2-4"))
    assert [colour_index(f) for f, _ in out] == [1, 2, 3]


@pytest.mark.django_db
def test_reverse_plays_the_frames_backwards(client, source, origins):
    _, out = decoded(get(client, "anim.gif", "reverse=true"))
    assert [colour_index(f) for f, _ in out] == [5, 4, 3, 2, 1, 0]
    assert [d for _, d in out] == DURATIONS[::-1]  # Each frame keeps its delay.


@pytest.mark.django_db
def test_fps_sets_every_duration_and_loop_the_count(client, source, origins):
    image, out = decoded(get(client, "anim.gif", "fps=20&loop=3"))
    assert [d for _, d in out] == [50] * 6
    assert image.info["loop"] == 3
    image, out = decoded(get(client, "anim.webp", "fps=5&loop=2"))
    assert [d for _, d in out] == [200] * 6
    assert image.info["loop"] == 2


@pytest.mark.django_db
def test_frame_n_is_a_still_of_that_frame(client, source, origins):
    for name in ("anim.gif", "anim.webp"):
        response = get(client, name, "frame=2")
        image = Image.open(io.BytesIO(body_of(response)))
        assert getattr(image, "n_frames", 1) == 1, name
        assert colour_index(image) == 1, name
    jpeg = get(client, "anim.gif", "frame=4&fm=jpg")
    assert jpeg["Content-Type"] == "image/jpeg" and colour_index(Image.open(io.BytesIO(body_of(jpeg)))) == 3
    # A still format shows where the selection starts.
    png = Image.open(io.BytesIO(body_of(get(client, "anim.gif", "frame=3-5&fm=png"))))
    assert colour_index(png) == 2
    # No frame asked for, a still format: the first frame, as before.
    first = Image.open(io.BytesIO(body_of(get(client, "anim.gif", "fm=png&reverse=true"))))
    assert colour_index(first) == 0


@pytest.mark.django_db
def test_every_stage_runs_on_every_frame(client, source, origins):
    _, out = decoded(get(client, "anim.gif", "w=50"))
    assert len(out) == 6 and all(f.size == (50, 38) for f, _ in out)
    assert [colour_index(f, (30, 25)) for f, _ in out] == [0, 1, 2, 3, 4, 5]
    _, out = decoded(get(client, "anim.gif", "flip=h"))
    # The moving white square is mirrored in each frame: it moves in from the right edge.
    for i, (frame, _) in enumerate(out):
        assert frame.getpixel((64 - 5 - 4 * i, 4))[:3] == (255, 255, 255), i
        assert frame.getpixel((5 + 4 * i, 4))[:3] == COLOURS[i], i


@pytest.mark.django_db
def test_the_mark_is_drawn_on_every_frame_as_on_a_still(client, source, origins, origin_root):
    Image.new("RGBA", (10, 10), (0, 0, 0, 255)).save(origin_root / "photos" / "mark.png")
    query = "mark=mark.png&mark-align=top,left&mark-pad=0&mark-tile=grid&mark-alpha=50"
    _, out = decoded(get(client, "anim.gif", query + "&w=40"))
    still = Image.open(io.BytesIO(body_of(get(client, "anim.gif", query + "&w=40&fm=png&frame=3"))))
    assert len(out) == 6
    for i, (frame, _) in enumerate(out):
        # Each frame's colour under a half-transparent black tile: half as bright.
        assert all(abs(got - c / 2) <= 8 for got, c in zip(frame.getpixel((25, 25))[:3], COLOURS[i])), i
    assert max(abs(a - b) for a, b in zip(out[2][0].getpixel((25, 25)), still.convert("RGBA").getpixel((25, 25)))) <= 8


@pytest.mark.django_db
def test_a_large_mark_is_sized_once_for_all_frames(client, source, origin_root):
    photos = origin_root / "photos"
    Image.new("RGBA", (2800, 2800), (0, 0, 0, 128)).save(photos / "big-mark.png")
    (photos / "long.gif").write_bytes(animated("GIF", count=120, durations=[40] * 120))
    get(client, "long.gif", "w=16&fm=png")  # Warm: the mark is fetched and kept.
    started = time.process_time()
    response = get(client, "long.gif", "mark=big-mark.png&mark-scale=50")
    assert response.status_code == 200 and Image.open(io.BytesIO(body_of(response))).n_frames == 120
    # Sized per frame, the 8-megapixel mark took 6 CPU-seconds here.
    assert time.process_time() - started < 1.5


@pytest.mark.django_db
def test_webp_origins_and_outputs(client, source, origins):
    response = get(client, "anim.webp", "w=32")
    assert response["Content-Type"] == "image/webp"
    image, out = decoded(response)
    assert image.n_frames == 6 and [colour_index(f, (20, 18)) for f, _ in out] == [0, 1, 2, 3, 4, 5]
    assert all(f.size == (32, 24) for f, _ in out)
    as_gif = get(client, "anim.webp", "fm=gif&reverse=true")
    assert as_gif["Content-Type"] == "image/gif"
    assert [colour_index(f) for f, _ in decoded(as_gif)[1]] == [5, 4, 3, 2, 1, 0]
    as_webp = get(client, "anim.gif", "fm=webp&interval=2")
    image, out = decoded(as_webp)
    assert as_webp["Content-Type"] == "image/webp" and [colour_index(f) for f, _ in out] == [0, 2, 4]


@pytest.mark.django_db
def test_transparency_survives_every_frame(client, source, origins):
    for query in ("", "fm=webp"):
        _, out = decoded(get(client, "clear.gif", query))
        assert len(out) == 6
        for frame, _ in out:
            assert frame.getpixel((30, 45))[3] == 0, query  # The transparent band.
            assert frame.getpixel((40, 20))[3] == 255, query


@pytest.mark.django_db
def test_trim_crops_every_frame_to_the_first_ones_box(client, source, origins):
    _, out = decoded(get(client, "clear.gif", "trim=alpha"))
    assert {f.size for f, _ in out} == {(64, 38)}


@pytest.mark.django_db
def test_a_selection_that_leaves_no_frame_is_a_422(client, source, origins):
    for query in ("frame=9", "frame=9-", "skip=1"):
        response = get(client, "anim.gif", query)
        assert response.status_code == 422, query
        assert response.json()["error"]["code"] == "no_frames"


# --- Caps -----------------------------------------------------------------------------------------------

def tiny_gif(frames: int) -> bytes:
    """A 1×1 GIF of `frames` frames, written block by block (Pillow would merge identical frames)."""
    head = b"GIF89a" + struct.pack("<HH", 1, 1) + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff"
    head += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = (b"\x21\xf9\x04\x04\x02\x00\x00\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1)
             + b"\x00\x02\x02\x4c\x01\x00")
    return head + frame * frames + b"\x3b"


def test_the_walk_counts_as_pillow_does():
    for data in (animated("GIF"), animated("WEBP"), animated("GIF", alpha=True), tiny_gif(40)):
        found = image_animation(data, max_frames=300)
        assert found.frames == Image.open(io.BytesIO(data)).n_frames
    assert image_animation(animated("GIF", alpha=True), max_frames=300).alpha
    assert not image_animation(tiny_gif(3), max_frames=300).alpha  # No frame names a transparent index.
    still = io.BytesIO()
    Image.new("RGB", (8, 8)).save(still, "GIF")
    assert image_animation(still.getvalue(), max_frames=300) is None


def test_frames_decode_one_by_one_at_one_size():
    data = animated("GIF")
    out = list(image_frames(data, count=6, alpha=False))
    assert [colour_index(f) for f, _ in out] == [0, 1, 2, 3, 4, 5]
    assert [d for _, d in out] == DURATIONS and {f.mode for f, _ in out} == {"RGB"}


def test_a_hostile_frame_count_is_refused_from_the_structure_cheaply():
    data = tiny_gif(5_000)
    started = time.process_time()
    with pytest.raises(TooManyFramesError, match="RENDER_MAX_FRAMES"):
        image_animation(data, max_frames=300)
    assert time.process_time() - started < 0.05  # Measured: about 1 ms; Pillow's n_frames is 12 ms.


def test_one_byte_sub_blocks_are_refused_before_pillow_walks_them():
    head = b"GIF89a" + struct.pack("<HH", 1, 1) + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00\x02"
    tiny = b"\x01\x4c" + b"\x01\x00" * (GIF_MAX_ANIMATION_BLOCKS + 10) + b"\x00"  # One-byte sub-blocks.
    data = head + frame + tiny + frame + b"\x02\x02\x4c\x01\x00;"
    started = time.process_time()
    with pytest.raises(TooManySegmentsError):
        image_animation(data, max_frames=300)
    assert time.process_time() - started < 0.2


@pytest.mark.django_db
def test_the_endpoint_refuses_too_many_frames(client, source, origin_root, settings):
    (origin_root / "photos" / "many.gif").write_bytes(tiny_gif(5_000))
    started = time.process_time()
    response = get(client, "many.gif")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "too_many_frames" and "RENDER_MAX_FRAMES" in error["message"]
    assert time.process_time() - started < 0.5
    # A still of its first frame needs no count: served as before.
    assert get(client, "many.gif", "fm=png").status_code == 200


@pytest.mark.django_db
def test_the_endpoint_refuses_too_many_pixels(client, source, origins, settings):
    settings.RENDER_MAX_ANIMATION_DECODE_PIXELS = 6 * 64 * 48 - 1
    response = get(client, "anim.gif", "w=10")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "animation_too_large"
    assert "RENDER_MAX_ANIMATION_DECODE_PIXELS" in response.json()["error"]["message"]
    assert get(client, "anim.gif", "frame=1-5").status_code == 200  # Five frames decoded: within.
    assert get(client, "anim.gif", "frame=6").status_code == 422  # A still of the sixth decodes all six.
    settings.RENDER_MAX_ANIMATION_DECODE_PIXELS = 10**9
    settings.RENDER_MAX_ANIMATION_PIXELS = 6 * 32 * 24 - 1
    response = get(client, "anim.gif", "w=32")
    assert response.status_code == 422
    assert "RENDER_MAX_ANIMATION_PIXELS" in response.json()["error"]["message"]
    assert get(client, "anim.gif", "w=32&skip=6").status_code == 200  # Five frames written: within.
    settings.RENDER_MAX_ANIMATION_PIXELS = 10**9
    settings.RENDER_MAX_WEBP_ANIMATION_PIXELS = 6 * 32 * 24 - 1
    response = get(client, "anim.gif", "fm=webp&w=32")
    assert response.status_code == 422
    assert "RENDER_MAX_WEBP_ANIMATION_PIXELS" in response.json()["error"]["message"]
    assert get(client, "anim.gif", "fm=webp&w=32&interval=2").status_code == 200



def test_an_animated_webp_profile_is_converted_to_srgb_on_every_frame():
    from tests.imaging.test_decode_fidelity import SRGB_BLUE, SRGB_GREEN, SRGB_RED, rgb_profile

    icc = rgb_profile(SRGB_GREEN, SRGB_RED, SRGB_BLUE, "Swapped primaries")  # Its red is sRGB's green.
    images = [Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))]
    out = io.BytesIO()
    images[0].save(out, "WEBP", save_all=True, append_images=images[1:], lossless=True, icc_profile=icc,
                   duration=100)
    first, second = (frame for frame, _ in image_frames(out.getvalue(), count=2, alpha=False))
    r, g, b = first.getpixel((8, 8))
    assert r < 10 and g > 245 and b < 10
    assert second.getpixel((8, 8))[2] > 245 and first.info == {} == second.info

