"""The output budget (each lever refused or clamped before the work, its neighbour rendered) and the
per-process limit on uncached renders, in-process and on a real granian server."""

import io
import math
import statistics
import subprocess
import threading
import time

import pytest
import requests
from PIL import Image

from rendering.budget import RenderBusyError, render_slot
from rendering.models import Render
from rendering.operations.mark import mark_drawn_size, mark_positions, mark_prepare, mark_tile_count
from rendering.operations.resize import output_size, resize_apply
from rendering.params import params_parse
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command

pytestmark = pytest.mark.django_db

BLUE = (0, 0, 255)


def png(size, color, mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def tiny(source, origin_root):
    """2×2 origins: the cheapest file that can ask for the most work."""
    photos = origin_root / "photos"
    (photos / "tiny.png").write_bytes(png((2, 2), (200, 30, 30)))
    (photos / "tiny-alpha.png").write_bytes(png((2, 2), (200, 30, 30, 128), "RGBA"))
    (photos / "wide.png").write_bytes(png((8, 1), (200, 30, 30)))
    (photos / "mark.png").write_bytes(png((10, 10), BLUE))
    (photos / "dot.png").write_bytes(png((2, 2), BLUE))
    return source


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def get(client, query, path="tiny.png", **headers):
    """The response, and the CPU-seconds this process spent answering it."""
    stored = Render.objects.count()
    started = time.process_time()
    response = client.get(f"/render/acme-photos/{path}?{query}", **headers)
    body = body_of(response)
    cpu = time.process_time() - started
    response.renders_stored = Render.objects.count() - stored
    return response, body, cpu


def image_of(body) -> Image.Image:
    return Image.open(io.BytesIO(body))


def assert_refused(response, body, cpu, code, *phrases):
    assert response.status_code == 422, body[:300]
    assert response["Cache-Control"] == "no-store"
    error = response.json()["error"]
    assert error["code"] == code
    for phrase in phrases:
        assert phrase in error["message"], error["message"]
    assert cpu < 0.5, f"refused after {cpu:.2f} CPU-s: the work was done before the check"
    assert response.renders_stored == 0


# --- Output pixels: clamped, as imgix clamps at 8192×8192 -------------------------------------------

def test_output_pixels_are_clamped_to_the_ceiling_not_refused(client, tiny):
    response, body, _ = get(client, "w=8192&h=8192&fit=scale&fm=jpg")
    assert response.status_code == 200
    image = image_of(body)
    assert image.size == (3464, 3464)  # Each side × √(12 MP / 8192²), rounded down.
    assert image.width * image.height <= 12_000_000 < 3465 * 3464
    # dpr=5 on a modest box is clamped the same way.
    response, body, _ = get(client, "w=1000&h=1000&fit=crop&dpr=5&fm=jpg")
    assert response.status_code == 200 and image_of(body).size == (3464, 3464)


def test_clip_is_capped_on_the_size_it_makes_not_on_the_box(client, tiny):
    # An 8:1 origin in an 8192×8192 clip box (67 MP) is 8192×1024 (8.4 MP): under the ceiling, untouched.
    response, body, _ = get(client, "w=8192&h=8192&fm=jpg", path="wide.png")
    assert response.status_code == 200 and image_of(body).size == (8192, 1024)


def test_a_large_jpeg_without_parameters_is_clamped_to_the_same_size_from_a_smaller_decode(
        client, tiny, origin_root, settings):
    settings.RENDER_MAX_OUTPUT_PIXELS = 1_000_000
    Image.new("RGB", (4000, 3000), (10, 120, 200)).save(origin_root / "photos" / "big.jpg", quality=90)
    # Clamped from 4000×3000: 1154×866 (JPEG draft may decode at 1/2, 2000×1500, first).
    response, body, _ = get(client, "", path="big.jpg")
    assert response.status_code == 200 and image_of(body).size == (1154, 866)
    assert image_of(body).convert("RGB").getpixel((500, 400)) == pytest.approx((10, 120, 200), abs=4)


def test_output_size_is_what_resize_makes(settings):
    settings.RENDER_MAX_OUTPUT_PIXELS = 5000
    queries = ["", "w=300", "w=300&h=40", "w=90&h=90&fit=crop", "w=90&h=90&fit=scale", "w=500&fit=max",
               "w=10&fit=max", "w=200&h=100&fit=min", "w=90&h=60&fit=fill", "w=90&h=60&fit=fillmax",
               "w=90&h=60&fit=clamp", "ar=9:1&fit=fill", "ar=1:3&fit=crop", "w=60&h=60&fit=crop&dpr=3",
               "w=0.5&h=0.5&fit=scale", "w=80&fit=bogus"]
    for size in [(120, 80), (30, 200), (2, 2)]:
        image = Image.new("RGB", size, "red")
        for query in queries:
            params = params_parse(query)
            made = resize_apply(image, params).size
            assert output_size(size, params) == made, (size, query)
            assert made[0] * made[1] <= 5000 or made == size == (2, 2), (size, query, made)


# --- Per-encoder ceilings: a size over one is served scaled to it, and says so ----------------------

def assert_capped(response, body, asked, served, setting, content_type=None, aspect=True):
    """Served (never refused) at `served`, the aspect ratio of `asked` kept, with the header."""
    assert response.status_code == 200, body[:300]
    assert image_of(body).size == served
    assert response["X-Render-Capped"] == f"{asked[0]}x{asked[1]} -> {served[0]}x{served[1]} ({setting})"
    if aspect:
        assert abs(served[0] / served[1] - asked[0] / asked[1]) < 2 / min(served)
    if content_type:
        assert response["Content-Type"] == content_type


ENCODERS = [
    # (fm, largest box served as asked, a box just over, what it is served at, setting, content type)
    ("png", (2449, 2449), (2450, 2450), (2449, 2449), "RENDER_MAX_PNG_PIXELS", "image/png"),
    ("png32", (2449, 2449), (2450, 2450), (2449, 2449), "RENDER_MAX_PNG_PIXELS", "image/png"),
    ("png8", (1000, 1000), (1001, 1000), (1000, 999), "RENDER_MAX_PALETTE_PIXELS", "image/png"),
    ("gif", (1000, 1000), (1001, 1000), (1000, 999), "RENDER_MAX_PALETTE_PIXELS", "image/gif"),
    ("webp", (3840, 2160), (3841, 2161), (3840, 2160), "RENDER_MAX_WEBP_PIXELS", "image/webp"),
    ("webp&lossless=true", (1000, 2000), (1001, 2000), (1000, 1999), "RENDER_MAX_LOSSLESS_PIXELS", "image/webp"),
    ("avif", (1500, 1400), (1501, 1400), (1500, 1399), "RENDER_MAX_AVIF_PIXELS", "image/avif"),
]


@pytest.mark.parametrize("fm, allowed, over, served, setting, content_type", ENCODERS,
                         ids=[e[0].replace("&lossless=true", "-lossless") for e in ENCODERS])
def test_encoder_ceiling(client, tiny, fm, allowed, over, served, setting, content_type):
    response, body, _ = get(client, f"w={over[0]}&h={over[1]}&fit=scale&fm={fm}")
    assert_capped(response, body, over, served, setting, content_type)
    response, body, _ = get(client, f"w={allowed[0]}&h={allowed[1]}&fit=scale&fm={fm}")
    assert response.status_code == 200, body[:300]
    assert response["Content-Type"] == content_type and image_of(body).size == allowed
    assert "X-Render-Capped" not in response


def test_a_capped_render_says_so_on_every_hit(client, tiny):
    query = "w=2450&h=2450&fit=scale&fm=png"
    first, body, _ = get(client, query)
    assert_capped(first, body, (2450, 2450), (2449, 2449), "RENDER_MAX_PNG_PIXELS")
    again, body, cpu = get(client, query)
    assert again.renders_stored == 0 and cpu < 0.2  # A hit: no image work.
    assert_capped(again, body, (2450, 2450), (2449, 2449), "RENDER_MAX_PNG_PIXELS")
    assert again["ETag"] == first["ETag"]
    assert Render.objects.get().capped == "2450x2450 -> 2449x2449 (RENDER_MAX_PNG_PIXELS)"
    conditional = client.get(f"/render/acme-photos/tiny.png?{query}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert conditional.status_code == 304 and conditional["X-Render-Capped"] == first["X-Render-Capped"]


def test_the_output_ceilings_say_so_too(client, tiny, settings):
    settings.RENDER_MAX_OUTPUT_PIXELS = 1_000_000
    response, body, _ = get(client, "w=2000&h=1000&fit=scale&fm=jpg")
    assert_capped(response, body, (2000, 1000), (1414, 707), "RENDER_MAX_OUTPUT_PIXELS")
    settings.RENDER_MAX_OUTPUT_PIXELS = 8192 * 8192
    response, body, _ = get(client, "w=8000&dpr=2&fm=jpg", path="wide.png")
    assert_capped(response, body, (16000, 2000), (8192, 1024), "8192x8192")
    # Within every ceiling, and a size not asked for (scaled down to the ceiling): no header.
    for query in ["w=8000&fm=jpg", "fm=jpg"]:
        response, _, _ = get(client, query, path="wide.png")
        assert response.status_code == 200 and "X-Render-Capped" not in response


def test_operator_sets_a_ceiling(client, tiny, settings):
    settings.RENDER_MAX_PNG_PIXELS = 200 * 200
    response, body, _ = get(client, "w=201&h=200&fit=scale&fm=png")
    assert_capped(response, body, (201, 200), (200, 199), "RENDER_MAX_PNG_PIXELS")
    response, body, _ = get(client, "w=200&h=200&fit=scale&fm=png")
    assert response.status_code == 200 and image_of(body).size == (200, 200)


def test_auto_format_chooses_webp_when_avif_is_over_budget(client, tiny):
    both = {"HTTP_ACCEPT": "image/avif,image/webp,*/*"}
    response, body, _ = get(client, "w=1501&h=1400&fit=scale&auto=format", **both)
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert image_of(body).size == (1501, 1400) and response["Vary"] == "Accept"
    assert "X-Render-Capped" not in response
    response, body, _ = get(client, "w=1500&h=1400&fit=scale&auto=format", **both)
    assert response["Content-Type"] == "image/avif" and image_of(body).size == (1500, 1400)
    # Over WebP's ceiling too: WebP still, which serves more of it, scaled to its ceiling.
    response, body, _ = get(client, "w=4000&h=3000&fit=scale&auto=format", **both)
    assert_capped(response, body, (4000, 3000), (3326, 2494), "RENDER_MAX_WEBP_PIXELS", "image/webp")
    # A client that takes AVIF only (or WebP with q=0) is not sent WebP: AVIF, at AVIF's ceiling.
    for accept in ("image/avif", "image/avif,image/webp;q=0"):
        response, body, _ = get(client, "w=1502&h=1400&fit=scale&auto=format", HTTP_ACCEPT=accept)
        assert_capped(response, body, (1502, 1400), (1500, 1399), "RENDER_MAX_AVIF_PIXELS", "image/avif")


def test_auto_compress_budgets_by_the_encoder_transparency_chooses(client, tiny):
    # Transparent: auto=compress writes PNG, so PNG's ceiling applies before the work.
    response, body, _ = get(client, "w=2450&h=2450&fit=scale&auto=compress", path="tiny-alpha.png")
    assert_capped(response, body, (2450, 2450), (2449, 2449), "RENDER_MAX_PNG_PIXELS", "image/png")
    # Opaque, or made opaque by bg: JPEG, which only the output ceiling bounds.
    for path, extra in [("tiny.png", ""), ("tiny-alpha.png", "&bg=white")]:
        response, body, _ = get(client, f"w=2450&h=2450&fit=scale&auto=compress{extra}", path=path)
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
        assert image_of(body).size == (2450, 2450) and "X-Render-Capped" not in response


def test_default_format_of_a_png_origin_is_budgeted_as_png(client, tiny):
    response, body, _ = get(client, "w=2450&h=2450&fit=scale")
    assert_capped(response, body, (2450, 2450), (2449, 2449), "RENDER_MAX_PNG_PIXELS", "image/png")


def test_an_image_is_scaled_to_its_encoders_budget_not_refused(client, tiny, origin_root, settings):
    # An image at its own size (no w, h or ar) is scaled down to the encoder's ceiling, as it is to
    # RENDER_MAX_OUTPUT_PIXELS, without a header (nothing asked for those pixels); a size asked
    # for is scaled down the same way, and says so.
    settings.RENDER_MAX_PNG_PIXELS = 10_000
    settings.RENDER_MAX_PALETTE_PIXELS = 2_500
    (origin_root / "photos" / "big.png").write_bytes(png((200, 150), (200, 30, 30, 128), "RGBA"))
    for query, content_type, size in [
        ("", "image/png", (115, 86)),  # √(10 000 / 30 000) of each side, rounded down.
        ("bg=fff", "image/png", (115, 86)),
        ("rect=0,0,200,100", "image/png", (141, 70)),
        ("fm=gif", "image/gif", (57, 43)),
    ]:
        response, body, _ = get(client, query, path="big.png")
        assert response.status_code == 200, (query, body[:300])
        assert response["Content-Type"] == content_type and image_of(body).size == size, query
        assert "X-Render-Capped" not in response
    response, body, _ = get(client, "w=200", path="big.png")
    assert_capped(response, body, (200, 150), (115, 86), "RENDER_MAX_PNG_PIXELS", "image/png")
    # With pad, the padded canvas is what is asked for and what is capped: the margins keep
    # their width (20 px each side) and the image shrinks inside them, its aspect ratio kept.
    response, body, _ = get(client, "w=200&pad=20", path="big.png")
    assert_capped(response, body, (200, 160), (108, 91), "RENDER_MAX_PNG_PIXELS", "image/png", aspect=False)
    image = image_of(body)
    assert image.getbbox() == (20, 20, 88, 71) and image.getpixel((0, 0))[3] == 0  # 68×51 inside.


# --- Watermarks: the drawn size (rotation included) and the tile count -------------------------------

def test_rotated_mark_size_is_what_pillow_draws():
    mark = Image.new("RGBA", (37, 11), BLUE)
    for query in ["", "mark-rot=45", "mark-rot=30&mark-w=50", "mark-rot=90", "mark-rot=359&mark-h=0.5",
                  "mark-scale=20&mark-rot=10", "mark-w=20&mark-h=20&mark-fit=crop&mark-rot=77", "mark-rot=180",
                  "mark-rot=270&mark-w=3", "mark-rot=12.5&mark-w=0.7"]:
        params = params_parse(query)
        assert mark_drawn_size(mark.size, (400, 300), params) == mark_prepare(mark, (400, 300), params).size, query


def test_tile_count_is_the_number_drawn():
    for query in ["mark-tile=grid", "mark-tile=grid&mark-pad=0", "mark-tile=grid&mark-x=-3&mark-y=7", ""]:
        params = params_parse(query)
        for base, size in [((100, 60), (10, 10)), ((990, 990), (10, 10)), ((7, 7), (9, 2))]:
            assert mark_tile_count(base, size, params) == len(mark_positions(base, size, params))


def test_huge_mark_is_refused_before_it_is_sized(client, tiny):
    response, body, cpu = get(client, "w=600&h=600&fit=scale&fm=jpg&mark=mark.png&mark-w=4000&mark-h=4000&mark-fit=scale")
    assert_refused(response, body, cpu, "mark_too_large", "4000×4000", "16,000,000 pixels", "RENDER_MAX_MARK_PIXELS", "8,000,000")


def test_rotated_mark_is_refused_on_its_rotated_size_and_its_neighbour_drawn(client, tiny):
    # 1999² fits the mark ceiling, but turned 45° Pillow's canvas is 2829² (8.0 MP): over it.
    response, body, cpu = get(client, "w=600&h=600&fit=scale&fm=jpg&mark=mark.png&mark-w=1999&mark-h=1999&mark-rot=45")
    assert_refused(response, body, cpu, "mark_too_large", "2829×2829", "8,003,241 pixels")
    response, body, _ = get(client, "w=600&h=600&fit=scale&fm=jpg&mark=mark.png&mark-w=1998&mark-h=1998&mark-rot=45"
                      "&mark-align=middle,center")
    assert response.status_code == 200
    image = image_of(body).convert("RGB")
    assert image.size == (600, 600)
    r, g, b = image.getpixel((300, 300))
    assert b > 200 and r < 60, "the rotated mark covers the middle of the image"


def test_too_many_tiles_refused_and_the_largest_grid_allowed_drawn(client, tiny):
    # A 10 px mark every 10 px: 100×100 = 10,000 tiles on 990², 101×101 on 1000².
    base = "fit=scale&fm=png&mark=mark.png&mark-tile=grid&mark-pad=0"
    response, body, cpu = get(client, f"w=1000&h=1000&{base}")
    assert_refused(response, body, cpu, "too_many_mark_tiles", "10201 times", "RENDER_MAX_MARK_TILES")
    response, body, _ = get(client, f"w=990&h=990&{base}")
    assert response.status_code == 200
    image = image_of(body).convert("RGB")
    assert image.size == (990, 990)
    assert all(image.getpixel(p) == BLUE for p in [(0, 0), (5, 5), (500, 500), (989, 989)])


def test_two_pixel_tiles_on_a_huge_canvas_cost_nothing(client, tiny):
    # Before the budget: ~6 million composites, tens of CPU-seconds.
    response, body, cpu = get(client, "w=8192&h=8192&fit=scale&fm=jpg&mark=dot.png&mark-tile=grid&mark-pad=0")
    assert_refused(response, body, cpu, "too_many_mark_tiles", "3464×3464 image")


# --- Uncached-render slots ---------------------------------------------------------------------------

def test_slots_are_taken_and_given_back(settings):
    settings.RENDER_MAX_CONCURRENT = 1
    settings.RENDER_SLOT_MAX_WAITERS = 0
    busy = []

    def other_render():
        try:
            with render_slot():
                pass
        except RenderBusyError as exc:
            busy.append(exc)

    with render_slot():
        thread = threading.Thread(target=other_render)
        thread.start()
        thread.join()
    assert busy and busy[0].status_code == 503 and busy[0].retry_after == 2
    with pytest.raises(ValueError):
        with render_slot():
            raise ValueError  # A failed render gives its slot back.
    with render_slot():
        pass


def test_uncached_render_without_a_slot_is_503_and_cached_hits_need_none(client, tiny, settings):
    cached = "w=40&fm=webp"
    assert get(client, cached)[0].status_code == 200
    settings.RENDER_MAX_CONCURRENT = 0
    response, body, _ = get(client, "w=41&fm=webp")
    assert response.status_code == 503 and response["Retry-After"] == "2"
    assert response["Cache-Control"] == "no-store" and response.json()["error"]["code"] == "render_busy"
    response, body, _ = get(client, cached)
    assert response.status_code == 200 and image_of(body).size == (40, 40)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_cached_hits_flow_while_worst_case_renders_run_on_granian(tiny, worker_env, settings):
    """One granian process × 4 threads, default slots (2): a batch of the most expensive allowed
    uncached renders gets 200 or 503 + Retry-After, never anything else; cached hits stay fast."""
    env = {**worker_env, "REDIS_URL": settings.REDIS_URL, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "RENDER_RATE_LIMIT": "1000000/m"}
    port = free_port()
    web = subprocess.Popen(web_command(port, workers=1, threads=4), cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}/render/acme-photos/tiny.png"
    hit_url = f"{base}?w=64&fm=webp"
    renders, hits, stop = [], [], threading.Event()

    def render_client(n):
        with requests.Session() as http:
            for i in range(3):
                # 12 MP JPEG from a 2×2 origin: the output ceiling's worst case.
                response = http.get(f"{base}?w=8192&h=8192&fit=scale&fm=jpg&q={n * 10 + i}", timeout=120)
                renders.append((response.status_code, response.headers.get("Retry-After"),
                                response.json()["error"]["code"] if response.status_code != 200 else None))
                if response.status_code == 503:
                    time.sleep(float(response.headers["Retry-After"]) / 4)

    def hit_client():
        with requests.Session() as http:
            while not stop.is_set():
                started = time.perf_counter()
                response = http.get(hit_url, timeout=30)
                hits.append((response.status_code, time.perf_counter() - started))
                time.sleep(0.02)

    try:
        wait_for_port(port, proc=web)
        assert requests.get(hit_url, timeout=30).status_code == 200
        assert requests.get(hit_url, timeout=30).status_code == 200
        clients = [threading.Thread(target=render_client, args=(n,)) for n in range(6)]
        watcher = threading.Thread(target=hit_client)
        watcher.start()
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        stop.set()
        watcher.join()
    finally:
        stop_process(web)
    statuses = [status for status, _, _ in renders]
    assert set(statuses) <= {200, 503}, renders
    assert statuses.count(200) >= 2 and statuses.count(503) >= 1, renders
    assert all(retry == "2" and code == "render_busy" for status, retry, code in renders if status == 503)
    latencies = sorted(seconds for _, seconds in hits)
    assert hits and all(status == 200 for status, _ in hits), hits
    p90 = latencies[math.ceil(len(latencies) * 0.9) - 1]
    print(f"\n{len(renders)} renders: {statuses.count(200)} × 200, {statuses.count(503)} × 503; "
          f"{len(hits)} cached hits, p50 {statistics.median(latencies) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms")
    assert p90 < 1.0, latencies
