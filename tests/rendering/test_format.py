"""imgix's format parameters through the rendering endpoint: chromasub, colorquant, cs, dl, dpi,
iptc, jpg-progressive and ch (client hints), each read back from the bytes or headers served."""

import io

import pytest
from PIL import Image, JpegImagePlugin

from rendering.encode import SRGB_PROFILE, image_encode
from rendering.models import Render
from rendering.operations.delivery import client_hints_apply, download_filename
from rendering.params import params_parse
from tests.rendering.test_views import first_then_done

pytestmark = pytest.mark.django_db

BASE = "/render/acme-photos/astronaut.jpg"


def get(client, query, **headers):
    response = client.get(f"{BASE}?{query}", **headers)
    assert response.status_code == 200, response.content
    return response


def image_of(response) -> Image.Image:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- chromasub -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, sampling", [(None, 2), ("420", 2), ("422", 1), ("444", 0)])
def test_chromasub_sets_the_jpegs_chroma_subsampling(client, source, value, sampling):
    query = "w=120&fm=jpg" + (f"&chromasub={value}" if value else "")
    assert JpegImagePlugin.get_sampling(image_of(get(client, query))) == sampling


def test_chromasub_keys_only_a_jpeg():
    assert params_parse("chromasub=444").canonical("jpg") != params_parse("").canonical("jpg")
    assert params_parse("chromasub=444").canonical("png") == params_parse("").canonical("png")


# --- colorquant ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fm", ["png", "png8", "gif", "webp&lossless=true"])
def test_colorquant_limits_the_colours(client, source, fm):
    plain = image_of(get(client, f"w=120&fm={fm}")).convert("RGB")
    quantised = image_of(get(client, f"w=120&fm={fm}&colorquant=16")).convert("RGB")
    assert len(plain.getcolors(1 << 16)) > 16
    assert len(quantised.getcolors(1 << 16)) <= 16


def test_colorquant_in_a_jpeg_posterises_it(client, source):
    plain = image_of(get(client, "w=120&fm=jpg")).convert("RGB")
    quantised = image_of(get(client, "w=120&fm=jpg&colorquant=2")).convert("RGB")
    # Two colours, then JPEG's own error: far fewer distinct colours than the photograph's.
    assert len(quantised.getcolors(1 << 16)) < len(plain.getcolors(1 << 16)) / 3


def test_colorquant_keeps_transparency():
    cutout = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    cutout.paste((200, 30, 30, 255), (10, 10, 30, 30))
    data, _ = image_encode(cutout, "png", params_parse("colorquant=4"))
    decoded = Image.open(io.BytesIO(data)).convert("RGBA")
    assert decoded.getpixel((0, 0))[3] == 0 and decoded.getpixel((20, 20)) == (200, 30, 30, 255)


# --- cs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fm", ["jpg", "png", "webp"])
def test_cs_srgb_embeds_an_srgb_profile_and_the_default_none(client, source, fm):
    assert "icc_profile" not in image_of(get(client, f"w=80&fm={fm}")).info
    assert "icc_profile" not in image_of(get(client, f"w=80&fm={fm}&cs=strip")).info
    for value in ("srgb", "tinysrgb"):
        assert image_of(get(client, f"w=80&fm={fm}&cs={value}")).info["icc_profile"] == SRGB_PROFILE


def test_cs_origin_is_served_as_srgb_and_said(client, source):
    response = get(client, "w=80&fm=jpg&cs=origin")
    assert image_of(response).info["icc_profile"] == SRGB_PROFILE
    assert "cs=origin" in response["X-Render-Fallback"]


def test_cs_adobergb1998_is_refused(client, source):
    response = client.get(f"{BASE}?w=80&cs=adobergb1998")
    assert response.status_code == 400 and "cs=adobergb1998" in response.json()["error"]["message"]


def test_cs_values_that_write_the_same_bytes_share_a_key():
    assert params_parse("cs=srgb").canonical("jpg") == params_parse("cs=tinysrgb").canonical("jpg")
    assert params_parse("cs=strip").canonical("jpg") == params_parse("").canonical("jpg")
    assert params_parse("cs=srgb").canonical("gif") == params_parse("").canonical("gif")  # GIF has no profile.


# --- dl ------------------------------------------------------------------------------------------

def test_dl_downloads_under_the_name_given_with_the_same_image(client, source):
    plain = get(client, "w=80")
    download = get(client, "w=80&dl=medium.jpg")
    assert "Content-Disposition" not in plain
    assert download["Content-Disposition"] == "attachment; filename=\"medium.jpg\"; filename*=UTF-8''medium.jpg"
    assert download.content == plain.content and Render.objects.count() == 1  # One render, one key.


def test_dl_without_a_name_is_the_origins_with_the_served_formats_extension(client, source):
    response = get(client, "w=80&fm=png&dl=")
    assert response["Content-Disposition"].startswith('attachment; filename="astronaut.png"')


def test_dl_a_name_beyond_ascii_is_exact_in_filename_star(client, source):
    response = get(client, "w=80&dl=caf%C3%A9%20%E2%98%95.jpg")
    assert response["Content-Disposition"] == (
        "attachment; filename=\"caf_ _.jpg\"; filename*=UTF-8''caf%C3%A9%20%E2%98%95.jpg")


@pytest.mark.parametrize("raw", ["..%2F..%2Fetc%2Fpasswd", "a%22b%0D%0ASet-Cookie:%20x=1.jpg", "..%5Cwin.ini",
                                 "%00%01", "..."])
def test_dl_a_hostile_name_is_cleaned(client, source, raw):
    header = get(client, f"w=80&dl={raw}")["Content-Disposition"]
    name = header.split('filename="')[1].split('"')[0]
    assert "\r" not in header and "\n" not in header and "\x00" not in header
    assert not {"/", "\\", '"', ";"} & set(name) and not name.startswith(".") and name


def test_download_filename_cleaning():
    assert download_filename(params_parse("dl=..%2F..%2Fsecret.png"), "a/b.jpg", "image/png") == "secret.png"
    assert download_filename(params_parse("dl=%20%20"), "a/b.jpg", "image/webp") == "b.webp"
    assert download_filename(params_parse("w=1"), "a/b.jpg", "image/png") is None


def test_dl_survives_a_304(client, source):
    first = get(client, "w=80&dl=x.jpg")
    again = client.get(f"{BASE}?w=80&dl=x.jpg", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again["Content-Disposition"] == first["Content-Disposition"]


# --- dpi -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fm", ["jpg", "png", "png8"])
def test_dpi_is_written_into_the_file(client, source, fm):
    plain = image_of(get(client, f"w=80&fm={fm}"))
    assert tuple(round(v) for v in plain.info.get("dpi", (72, 72))) != (300, 300)
    dpi = image_of(get(client, f"w=80&fm={fm}&dpi=300")).info["dpi"]
    assert tuple(round(v) for v in dpi) == (300, 300)


def test_dpi_keys_only_formats_that_carry_it():
    assert params_parse("dpi=300").canonical("png") != params_parse("").canonical("png")
    assert params_parse("dpi=300").canonical("webp") == params_parse("").canonical("webp")
    assert params_parse("dpi=0").canonical("jpg") == params_parse("").canonical("jpg")


def test_dpi_and_a_profile_on_a_cutout_are_written_not_the_stored_cutout_served(client, source):
    plain = first_then_done(client, f"{BASE}?bg-remove=true")
    plain_name = Render.objects.get().storage_name
    response = client.get(f"{BASE}?bg-remove=true&dpi=300&cs=srgb")
    image = image_of(response)
    assert response["Content-Type"] == "image/png" and image.mode == "RGBA"
    assert tuple(round(v) for v in image.info["dpi"]) == (300, 300) and image.info["icc_profile"] == SRGB_PROFILE
    assert "dpi" not in image_of(plain).info
    assert Render.objects.exclude(storage_name=plain_name).count() == 1  # Its own render, not the cutout.


# --- iptc ----------------------------------------------------------------------------------------

def test_iptc_block_is_what_is_done_and_allow_is_refused(client, source):
    assert get(client, "w=80&iptc=block").content == get(client, "w=80").content
    refused = client.get(f"{BASE}?w=80&iptc=allow")
    assert refused.status_code == 400 and "iptc=allow" in refused.json()["error"]["message"]


# --- jpg-progressive -----------------------------------------------------------------------------

@pytest.mark.parametrize("query, progressive", [
    ("fm=jpg", False), ("fm=jpg&jpg-progressive=true", True), ("fm=jpg&jpeg-progressive=1", True),
    ("fm=jpg&jpg-progressive=false", False), ("fm=pjpg", True), ("fm=pjpg&jpg-progressive=false", True),
])
def test_jpg_progressive(client, source, query, progressive):
    assert bool(image_of(get(client, f"w=80&{query}")).info.get("progressive")) is progressive


def test_jpg_progressive_keys_only_a_baseline_jpeg():
    assert params_parse("jpg-progressive=true").canonical("jpg") != params_parse("").canonical("jpg")
    assert params_parse("jpg-progressive=true").canonical("pjpg") == params_parse("").canonical("pjpg")
    assert params_parse("jpg-progressive=true").canonical("png") == params_parse("").canonical("png")


# --- ch (client hints) ---------------------------------------------------------------------------

def test_ch_width_and_dpr_size_the_image_and_the_response_varies_on_them(client, source):
    url_only = get(client, "w=200&ch=width,dpr")
    assert image_of(url_only).width == 200  # No hints sent: the URL's own values.
    assert set(url_only["Vary"].split(", ")) == {"Sec-CH-Width", "Width", "Sec-CH-DPR", "DPR"}
    assert url_only["Accept-CH"] == "Sec-CH-Width, Width, Sec-CH-DPR, DPR"
    assert image_of(get(client, "w=200&ch=width,dpr", HTTP_WIDTH="150")).width == 150
    # Width is in device pixels: w = Width ÷ DPR, and the output is Width wide.
    hinted = get(client, "w=200&h=100&fit=crop&ch=width,dpr", HTTP_SEC_CH_WIDTH="300", HTTP_SEC_CH_DPR="2")
    assert image_of(hinted).size == (300, 200)  # h=100 CSS pixels at DPR 2.
    assert image_of(get(client, "w=100&ch=dpr", HTTP_DPR="3")).width == 300
    assert Render.objects.count() == 4  # Each size its own render.


def test_hints_the_url_does_not_name_are_ignored(client, source):
    response = get(client, "w=200", HTTP_WIDTH="120", HTTP_DPR="2", HTTP_SAVE_DATA="on")
    assert image_of(response).width == 200 and "Vary" not in response and "Accept-CH" not in response
    only_width = get(client, "w=200&ch=width", HTTP_DPR="2")
    assert image_of(only_width).width == 200 and "DPR" not in only_width["Vary"]


def test_ch_save_data_compresses(client, source):
    plain = get(client, "w=300&fm=jpg&ch=save-data")
    saving = get(client, "w=300&fm=jpg&ch=save-data", HTTP_SAVE_DATA="on")
    assert plain["Vary"] == "Save-Data"
    assert len(saving.content) < len(plain.content) * 0.8
    assert saving.content == get(client, "w=300&fm=jpg&auto=compress").content  # q 45, as auto=compress.


def test_ch_with_auto_format_varies_on_accept_too(client, source):
    response = get(client, "w=100&auto=format&ch=width", HTTP_ACCEPT="image/webp", HTTP_WIDTH="90")
    assert response["Content-Type"] == "image/webp" and image_of(response).width == 90
    assert response["Vary"] == "Accept, Sec-CH-Width, Width"


def test_client_hints_apply():
    p = params_parse("w=400&dpr=2&q=80&ch=width,dpr,save-data")
    assert client_hints_apply(p, {}) is p
    hinted = client_hints_apply(p, {"Width": "900", "DPR": "3", "Save-Data": "on"})
    assert (hinted.w.value, hinted.dpr, hinted.q, "compress" in hinted.auto) == (300, 3.0, 45, True)
    # Unreadable hints leave the URL's values; a DPR beyond imgix's 5 is clamped.
    assert client_hints_apply(p, {"Width": "wide", "DPR": "x"}) == p
    assert client_hints_apply(p, {"DPR": "9"}).dpr == 5.0
    assert client_hints_apply(p, {"Save-Data": "off"}) == p
    assert client_hints_apply(params_parse("w=10&ch=width"), {"Width": "1"}).w.value == 1  # Pixels, not a ratio.


def test_a_jpeg_too_dense_for_pillows_buffer_is_written_baseline_not_a_500(client, source, origin_root):
    """Noise at q=100 4:4:4 needs over two bytes a pixel, more than Pillow's buffer for an
    optimised or progressive JPEG ("broken data stream"): written baseline instead of failing."""
    import numpy as np

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (600, 600, 3), dtype=np.uint8)).save(origin_root / "photos" / "noise.png")
    response = client.get(f"/render/{source.slug}/noise.png?fm=jpg&q=100&chromasub=444&jpg-progressive=true")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    image = Image.open(io.BytesIO(body))
    assert image.format == "JPEG" and image.size == (600, 600)
