"""Results of the remove.bg API on a real photograph, cut out by the real model (u2netp): each
option checked on the pixels that come back, and the headers that describe them."""

import base64
import io
import json
import zipfile
from decimal import Decimal

import numpy as np
import pytest
from PIL import Image

from cutouts.models import BgRemoveJob
from removebg_api.models import Call, CreditAccount
from usage.models import UsageDaily
from usage.services import usage_persist

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def cut(made, photo_jpg, account):
    """The astronaut (512×512) uploaded and cut out once; every call after reuses the job."""
    CreditAccount.objects.create(account=account, credits=100, free_calls=50)
    job = made({"image_file": io.BytesIO(photo_jpg)})
    return job


def ok(response):
    assert response.status_code == 200, response.content[:500]
    return response


def image_of(response) -> Image.Image:
    return Image.open(io.BytesIO(response.content))


def send(call, photo, **fields):
    return ok(call({"image_file": io.BytesIO(photo), **fields}))


def test_the_default_is_a_preview_png_with_its_headers(call, cut, photo_jpg):
    response = send(call, photo_jpg)
    image = image_of(response)
    assert response["Content-Type"] == "image/png" and image.mode == "RGBA"
    # preview: at most 0.25 megapixels, the aspect ratio kept.
    assert image.size == (500, 500)
    assert (response["X-Width"], response["X-Height"]) == ("500", "500")
    alpha = np.asarray(image.getchannel("A"))
    assert alpha.min() == 0 and alpha.max() == 255
    # The foreground box, in the input image's pixels, holds the subject.
    top, left = int(response["X-Foreground-Top"]), int(response["X-Foreground-Left"])
    width, height = int(response["X-Foreground-Width"]), int(response["X-Foreground-Height"])
    assert 0 <= left < 512 and 0 <= top < 512 and 100 < width <= 512 - left and 100 < height <= 512 - top
    assert response["X-Type"] == "other"
    assert response["X-Credits-Charged"] == "0"  # A free call.
    # Ours: the model and refinement that made the cutout.
    assert (response["X-Bg-Remove-Model"], response["X-Bg-Remove-Refinement"]) == (cut.model, cut.refinement)
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(response.headers)
    # One job, one inference, however many calls.
    job = BgRemoveJob.objects.get()
    assert job.inferences == 1 and job.id == cut.id


def test_full_size_charges_a_credit_and_keeps_the_resolution(call, cut, photo_jpg, account):
    response = send(call, photo_jpg, size="full")
    assert image_of(response).size == (512, 512)
    assert response["X-Credits-Charged"] == "1"
    assert Call.objects.get(size="full").credits == Decimal("1")
    balance = call(path="/v1.0/account", method="get").json()["data"]["attributes"]["credits"]["total"]
    assert balance == 99.0


def test_free_calls_run_out_then_previews_cost_a_quarter(call, cut, photo_jpg, account):
    # The fixture's first call (answered 429) holds a free call until an answered call takes its place.
    CreditAccount.objects.filter(account=account).update(free_calls=2)
    assert send(call, photo_jpg)["X-Credits-Charged"] == "0"
    assert send(call, photo_jpg)["X-Credits-Charged"] == "0"
    assert send(call, photo_jpg)["X-Credits-Charged"] == "0.25"
    free = call(path="/v1.0/account", method="get").json()["data"]["attributes"]["api"]["free_calls"]
    assert free == 0


def test_usage_metering_counts_the_calls(call, cut, photo_jpg):
    response = send(call, photo_jpg)
    usage_persist()
    row = UsageDaily.objects.get(source=cut.source)
    assert row.renders == 1 and row.bytes_served == len(response.content)


def test_crop_keeps_the_subject_and_margins_add_to_it(call, cut, photo_jpg):
    full = send(call, photo_jpg, size="full")
    width, height = int(full["X-Foreground-Width"]), int(full["X-Foreground-Height"])
    cropped = image_of(send(call, photo_jpg, size="full", crop="true"))
    assert cropped.size == (width, height)
    margin = image_of(send(call, photo_jpg, size="full", crop="true", crop_margin="10px 20px"))
    assert margin.size == (width + 40, height + 20)
    alpha = np.asarray(margin.getchannel("A"))
    assert alpha[:10].max() == 0 and alpha[:, :20].max() == 0  # The margin is transparent.
    relative = image_of(send(call, photo_jpg, size="full", crop="true", crop_margin="10%"))
    assert relative.size == (width + 2 * round(width * 0.1), height + 2 * round(height * 0.1))


def test_channels_alpha_is_the_matte(call, cut, photo_jpg):
    rgba = image_of(send(call, photo_jpg))
    matte = image_of(send(call, photo_jpg, channels="alpha"))
    assert matte.mode == "L" and matte.size == rgba.size
    assert np.array_equal(np.asarray(matte), np.asarray(rgba.getchannel("A")))


def test_formats(call, cut, photo_jpg):
    jpg = send(call, photo_jpg, format="jpg")
    assert jpg["Content-Type"] == "image/jpeg" and image_of(jpg).format == "JPEG"
    assert image_of(jpg).getpixel((0, 0)) == pytest.approx((255, 255, 255), abs=3)  # Flattened on white.
    webp = send(call, photo_jpg, format="webp")
    assert webp["Content-Type"] == "image/webp" and image_of(webp).mode == "RGBA"
    archive = zipfile.ZipFile(io.BytesIO(send(call, photo_jpg, format="zip").content))
    assert sorted(archive.namelist()) == ["alpha.png", "color.jpg"]
    color = Image.open(io.BytesIO(archive.read("color.jpg")))
    matte = Image.open(io.BytesIO(archive.read("alpha.png")))
    assert color.mode == "RGB" and matte.mode == "L" and color.size == matte.size == (500, 500)
    png = image_of(send(call, photo_jpg, format="png"))
    assert np.array_equal(np.asarray(matte), np.asarray(png.getchannel("A")))


def test_bg_color_fills_the_background_and_auto_format_is_then_jpeg(call, cut, photo_jpg):
    response = send(call, photo_jpg, bg_color="ff0000")
    image = image_of(response)
    assert response["Content-Type"] == "image/jpeg" and image.mode == "RGB"
    assert image.getpixel((2, 2)) == pytest.approx((254, 0, 0), abs=6)
    translucent = image_of(send(call, photo_jpg, bg_color="00ff0080"))
    assert translucent.mode == "RGBA" and translucent.getpixel((1, 1)) == pytest.approx((0, 255, 0, 128), abs=2)


def test_bg_image_is_under_the_cutout(call, cut, photo_jpg):
    background = io.BytesIO()
    Image.new("RGB", (300, 100), (0, 0, 255)).save(background, "PNG")
    background.seek(0)
    response = ok(call({"image_file": io.BytesIO(photo_jpg), "bg_image_file": background}))
    image = image_of(response)
    assert response["Content-Type"] == "image/jpeg" and image.size == (500, 500)
    assert image.getpixel((2, 2)) == pytest.approx((0, 0, 255), abs=8)
    both = call({"image_file": io.BytesIO(photo_jpg), "bg_color": "fff", "bg_image_url": "http://10.0.0.1/b.jpg"})
    assert both.status_code == 400 and both.json()["errors"][0]["code"] == "multiple_bg_sources"


def test_scale_and_position_place_the_subject_on_the_canvas(call, cut, photo_jpg):
    full = send(call, photo_jpg, size="full")
    fw, fh = int(full["X-Foreground-Width"]), int(full["X-Foreground-Height"])
    half = image_of(send(call, photo_jpg, size="full", scale="50%", position="0% 0%"))
    assert half.size == (512, 512)
    box = half.getchannel("A").point(lambda v: 255 if v >= 8 else 0).getbbox()
    factor = min(256 / fw, 256 / fh)
    assert box[0] <= 1 and box[1] <= 1  # Top left.
    assert abs((box[2] - box[0]) - round(fw * factor)) <= 2 and abs((box[3] - box[1]) - round(fh * factor)) <= 2
    centred = image_of(send(call, photo_jpg, size="full", scale="50%"))
    box = centred.getchannel("A").point(lambda v: 255 if v >= 8 else 0).getbbox()
    assert abs((box[0] + box[2]) / 2 - 256) <= 2 and abs((box[1] + box[3]) / 2 - 256) <= 2


def test_roi_keeps_only_what_is_inside(call, cut, photo_jpg):
    left_half = image_of(send(call, photo_jpg, size="full", roi="0% 0% 50% 100%"))
    alpha = np.asarray(left_half.getchannel("A"))
    assert alpha[:, 257:].max() == 0 and alpha[:, :256].max() == 255
    for roi, code in (("0 0 600px 10px", "roi_exceeds_bounds"), ("100px 0 50px 10px", "roi_region_empty")):
        response = call({"image_file": io.BytesIO(photo_jpg), "roi": roi})
        assert response.status_code == 400 and response.json()["errors"][0]["code"] == code


def test_shadow_darkens_below_the_subject(call, cut, photo_jpg):
    plain = np.asarray(image_of(send(call, photo_jpg, bg_color="fff", format="png")).convert("L"), dtype=int)
    shadowed = np.asarray(image_of(send(call, photo_jpg, bg_color="fff", format="png", add_shadow="true"))
                          .convert("L"), dtype=int)
    assert plain.shape == shadowed.shape
    assert (shadowed <= plain).all() and (plain - shadowed).max() > 20


def test_json_answer_carries_the_image_in_base64(call, cut, photo_jpg):
    response = ok(call({"image_file": io.BytesIO(photo_jpg)}, headers={"Accept": "application/json"}))
    data = response.json()["data"]
    image = Image.open(io.BytesIO(base64.b64decode(data["result_b64"])))
    assert image.size == (500, 500)
    assert data["foreground_width"] == int(response["X-Foreground-Width"])


def test_the_same_image_as_base64_in_json_and_urlencoded(call, cut, photo_jpg):
    b64 = base64.b64encode(photo_jpg).decode()
    as_json = ok(call(json.dumps({"image_file_b64": b64, "size": "full", "crop": True}),
                      content_type="application/json"))
    from urllib.parse import urlencode

    as_form = ok(call(urlencode({"image_file_b64": b64, "size": "full", "crop": "true"}),
                      content_type="application/x-www-form-urlencoded"))
    assert as_json.content == as_form.content
    assert BgRemoveJob.objects.count() == 1


def test_type_person_is_reported(call, cut, photo_jpg):
    # u2net_human_seg is not provisioned in the tests: the default model's job serves it.
    response = send(call, photo_jpg, type="person")
    assert response["X-Type"] == "person" and BgRemoveJob.objects.count() == 1
    assert "X-Type" not in send(call, photo_jpg, type_level="none")


def test_the_same_call_again_reads_its_kept_result(call, cut, photo_jpg, monkeypatch):
    from removebg_api import results
    from removebg_api.results import RESULT_CONTENT_TYPE
    from rendering.models import Render
    from rendering.store import render_purge

    first = send(call, photo_jpg, size="full", crop="true")
    kept = Render.objects.filter(content_type=RESULT_CONTENT_TYPE)
    assert kept.count() == 1
    made = []
    original = results._result_make
    monkeypatch.setattr(results, "_result_make", lambda **kwargs: made.append(1) or original(**kwargs))
    again = send(call, photo_jpg, size="full", crop="true")
    assert made == [] and kept.count() == 1  # Read, not made.
    assert again.content == first.content
    for name in ("Content-Type", "X-Width", "X-Height", "X-Foreground-Top", "X-Foreground-Left",
                 "X-Foreground-Width", "X-Foreground-Height"):
        assert again[name] == first[name], name
    # Other options are another result; the same options on another background too.
    send(call, photo_jpg, size="full", crop="true", bg_color="ff0000")
    assert made == [1] and kept.count() == 2
    # Purging the upload removes its kept results with it; the next call makes it again.
    upload_source = kept.first().source
    render_purge(source=upload_source)
    assert not kept.exists()


def test_semitransparency_false_keeps_each_pixel_whole_or_removes_it(call, cut, photo_jpg):
    soft = np.asarray(image_of(send(call, photo_jpg)).getchannel("A"))
    hard = np.asarray(image_of(send(call, photo_jpg, semitransparency="false")).getchannel("A"))
    assert ((soft > 0) & (soft < 255)).sum() > 100  # The model's soft edges, by default.
    assert set(np.unique(hard)) <= {0, 255}
    # Cut at half opacity: the subject is where the soft matte is at least half opaque.
    assert np.array_equal(hard == 255, soft >= 128)


def foreground_of(response) -> tuple[int, int, int, int]:
    return tuple(int(response[f"X-Foreground-{name}"]) for name in ("Left", "Top", "Width", "Height"))


def alpha_box(image: Image.Image) -> tuple[int, int, int, int]:
    left, top, right, bottom = image.getchannel("A").point(lambda v: 255 if v >= 8 else 0).getbbox()
    return (left, top, right - left, bottom - top)


def test_the_foreground_is_in_the_result_pixels_of_a_preview(call, made, photo_jpg, account):
    # The astronaut at twice its size: a preview (≤ 0.25 MP) is under half the input's width.
    big = io.BytesIO()
    Image.open(io.BytesIO(photo_jpg)).resize((1024, 1024)).save(big, "JPEG", quality=95)
    made({"image_file": io.BytesIO(big.getvalue())})
    preview = send(call, big.getvalue(), size="preview")
    image = image_of(preview)
    assert image.size == (500, 500)
    left, top, width, height = foreground_of(preview)
    assert left + width <= 500 and top + height <= 500 and width > 200  # Input pixels would pass 500.
    assert (left, top, width, height) == alpha_box(image)
    full = send(call, big.getvalue(), size="full")
    assert image_of(full).size == (1024, 1024)
    # The same subject, 1024 / 500 times as large in the full-size result.
    assert foreground_of(full) == pytest.approx([v * 1024 / 500 for v in (left, top, width, height)], abs=4)
    json_answer = ok(call({"image_file": io.BytesIO(big.getvalue())}, headers={"Accept": "application/json"}))
    data = json_answer.json()["data"]
    assert (data["foreground_left"], data["foreground_top"], data["foreground_width"],
            data["foreground_height"]) == (left, top, width, height)


def test_the_foreground_of_a_crop_is_inside_its_margins(call, cut, photo_jpg):
    response = send(call, photo_jpg, crop="true", crop_margin="10px 20px", size="preview")
    image = image_of(response)
    left, top, width, height = foreground_of(response)
    assert (left, top) == (20, 10) and (width, height) == (image.width - 40, image.height - 20)
    assert (left, top, width, height) == alpha_box(image)
    # On a colour (no alpha left in the result), the box is still the subject's.
    coloured = send(call, photo_jpg, crop="true", crop_margin="10px 20px", size="preview", bg_color="81d4fa")
    assert foreground_of(coloured) == (left, top, width, height)


def test_the_foreground_of_a_scaled_and_placed_subject(call, cut, photo_jpg):
    response = send(call, photo_jpg, size="full", scale="50%", position="100% 0%")
    image = image_of(response)
    left, top, width, height = foreground_of(response)
    assert (left, top, width, height) == alpha_box(image)
    assert left + width >= 510 and top <= 1 and max(width, height) <= 258


def test_size_50mp_is_the_largest_the_budgets_allow(call, cut, photo_jpg):
    response = send(call, photo_jpg, size="50MP")
    assert image_of(response).size == (512, 512) and response["X-Credits-Charged"] == "1"
    assert Call.objects.filter(size="50mp").count() == 1
    auto = send(call, photo_jpg, size="auto")
    assert image_of(auto).size == (512, 512)


@pytest.mark.parametrize("kind,level1,level2", [("animal", "animal", "animal"), ("graphic", "other", "graphics"),
                                                ("graphics", "other", "graphics"),
                                                ("transportation", "other", "transportation"),
                                                ("car", "car", "car"), ("product", "product", "product")])
def test_every_type_is_served_by_the_account_model_and_reported(call, cut, photo_jpg, kind, level1, level2):
    # No provisioned model is made for these types: the account's model makes the cutout, once.
    response = send(call, photo_jpg, type=kind)
    assert response["X-Type"] == level1 and response["X-Bg-Remove-Model"] == cut.model
    assert send(call, photo_jpg, type=kind, type_level="2")["X-Type"] == level2
    assert BgRemoveJob.objects.count() == 1


def test_format_webp_is_a_webp_with_alpha(call, cut, photo_jpg):
    response = send(call, photo_jpg, format="webp")
    image = image_of(response)
    assert response["Content-Type"] == "image/webp" and image.format == "WEBP" and image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0 and image.getpixel((250, 150))[3] > 240


def test_an_unmetered_account_is_served_every_size_and_told_the_price(call, made, photo_jpg, account):
    made({"image_file": io.BytesIO(photo_jpg), "size": "full"})
    credit = CreditAccount.objects.get(account=account)
    assert credit.credits is None  # No setting, no grant: unmetered.
    for size, price in (("full", "1"), ("preview", "0.25"), ("auto", "1")):
        assert send(call, photo_jpg, size=size)["X-Credits-Charged"] == price
    credit.refresh_from_db()
    assert (credit.charged, credit.free_used) == (0, 0)  # Nothing taken.
    calls = Call.objects.filter(held=False)
    assert calls.count() == 3 and not calls.filter(metered=True).exists()
    assert sorted(str(c.credits) for c in calls) == ["0.25", "1.00", "1.00"]
    # Metered by an operator from now on: its calls are charged against what it is granted.
    CreditAccount.objects.filter(pk=credit.pk).update(credits=1)
    assert send(call, photo_jpg, size="full")["X-Credits-Charged"] == "1"
    response = call({"image_file": io.BytesIO(photo_jpg), "size": "full"})
    assert response.status_code == 402


def test_size_auto_is_the_highest_size_a_metered_account_can_pay(call, made, photo_jpg, account):
    CreditAccount.objects.create(account=account, credits=0, free_calls=5)
    made({"image_file": io.BytesIO(photo_jpg), "size": "preview"})
    response = send(call, photo_jpg, size="auto")  # No credits: a preview, on a free call.
    assert image_of(response).size == (500, 500) and response["X-Credits-Charged"] == "0"
    CreditAccount.objects.filter(account=account).update(credits=1)
    response = send(call, photo_jpg, size="auto")  # A credit: the full size.
    assert image_of(response).size == (512, 512) and response["X-Credits-Charged"] == "1"
    assert image_of(send(call, photo_jpg, size="auto")).size == (500, 500)  # Spent: a preview again.
    assert list(Call.objects.filter(held=False).order_by("created_at").values_list("size", flat=True)) == [
        "preview", "50mp", "preview"]
    # Nothing left at all: 402, as for any size.
    CreditAccount.objects.filter(account=account).update(free_calls=0)
    assert call({"image_file": io.BytesIO(photo_jpg), "size": "auto"}).status_code == 402
