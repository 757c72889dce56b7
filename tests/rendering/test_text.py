"""The text stage (rendering/operations/text.py): parameters, fonts, and the ink on real pixels."""

import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops

from rendering.operations.text import FAMILIES, FONTS, MAX_FONT_PIXELS, MAX_TEXT_CHARS, STAGE, font_resolve, text_layout
from rendering.stage import StageContext

PHOTO = Path(__file__).resolve().parent.parent / "fixtures" / "astronaut.jpg"
GREY = (128, 128, 128)


ALIASES = {alias: param.name for param in STAGE.params for alias in param.aliases}


def params(query: dict, **overrides):
    """RenderParams as the stage sees them: its fields parsed from `query` (aliases read as the
    parser will, by their names), plus w/h/dpr."""
    query = {ALIASES.get(name, name): value for name, value in query.items()}
    fields = {**STAGE.fields, **STAGE.parse(query, {})}
    base = {"w": None, "h": None, "dpr": 1.0}
    base.update(overrides)
    return types.SimpleNamespace(**fields, **base)


def draw(image, query: dict, **overrides):
    return STAGE.apply(image, params(query, **overrides), StageContext())


def photo():
    return Image.open(PHOTO).convert("RGB")


def ink(before, after, threshold=40):
    """Where the stage changed the image: a boolean array (rows, columns)."""
    a = np.asarray(before.convert("RGB"), dtype=np.int16)
    b = np.asarray(after.convert("RGB"), dtype=np.int16)
    return np.abs(a - b).max(axis=2) > threshold


def bbox(mask):
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max(), ys.max()


# Parsing.

def test_aliases_are_imgixs():
    assert ALIASES == {
        "t": "txt", "txtalign": "txt-align", "ta": "txt-align", "txtclip": "txt-clip", "tcl": "txt-clip",
        "txtcolor": "txt-color", "txt-clr": "txt-color", "txtclr": "txt-color", "tc": "txt-color",
        "txtfit": "txt-fit", "tf": "txt-font", "txtfont": "txt-font", "txtlead": "txt-lead",
        "txtline": "txt-line", "tl": "txt-line", "txtlinecolor": "txt-line-color",
        "txt-line-clr": "txt-line-color", "txtlineclr": "txt-line-color", "txtpad": "txt-pad", "tp": "txt-pad",
        "txtshad": "txt-shad", "tsh": "txt-shad", "tsz": "txt-size", "txtsize": "txt-size",
        "txttrack": "txt-track", "tt": "txt-track", "txtwidth": "txt-width", "txtx": "txt-x", "txty": "txt-y",
    }


def test_aliases_and_defaults():
    p = params({"t": "Hi", "tsz": "30", "tc": "f00", "ta": "top,left", "tf": "serif", "tl": "2",
                "txtlineclr": "00f", "tp": "4", "tsh": "3", "tt": "2", "txtlead": "5", "tcl": "start",
                "txtfit": "max", "txtwidth": "100", "txtx": "7", "txty": "9"})
    assert (p.txt, p.txt_size, p.txt_color, p.txt_align) == ("Hi", 30, (255, 0, 0, 255), ("top", "left"))
    assert (p.txt_font, p.txt_line, p.txt_line_color) == ("LiberationSerif-Regular", 2, (0, 0, 255, 255))
    assert (p.txt_pad, p.txt_shad, p.txt_track, p.txt_lead, p.txt_clip) == (4, 3.0, 2, 5, ("start",))
    assert (p.txt_fit, p.txt_width, p.txt_x, p.txt_y) == ("max", 100, 7, 9)
    default = params({"txt": "Hi"})
    assert (default.txt_size, default.txt_pad, default.txt_color, default.txt_align) == (
        12, 10, (0, 0, 0, 255), ("bottom", "right"))
    assert default.txt_clip == ("end",) and default.txt_line_color == (255, 255, 255, 255)
    assert default.txt_font == "LiberationSans-Regular"


def test_values_are_clamped_and_unreadable_ones_keep_the_default():
    p = params({"txt": "Hi", "txt-size": "100000", "txt-shad": "50", "txt-track": "-40",
                "txt-pad": "-3", "txt-lead": "-2", "txt-line": "5000"})
    assert (p.txt_size, p.txt_shad, p.txt_track, p.txt_pad, p.txt_lead) == (MAX_FONT_PIXELS, 10.0, -4, 0, 0)
    assert p.txt_line == 100
    assert params({"txt": "Hi", "txt-width": "0"}).txt_width is None
    assert params({"txt": "Hi", "txt-width": "99999"}).txt_width == 8192
    p = params({"txt": "Hi", "txt-size": "big", "txt-color": "nope", "txt-align": "sideways",
                "txt-fit": "crop"})
    assert (p.txt_size, p.txt_color, p.txt_align, p.txt_fit) == (12, (0, 0, 0, 255), ("bottom", "right"), None)


def test_align_and_clip_have_one_canonical_form():
    assert params({"txt-align": "right,bottom"}).txt_align == ("bottom", "right")
    assert params({"txt-align": "left"}).txt_align == ("bottom", "left")
    assert params({"txt-align": "center,middle"}).txt_align == ("middle", "center")
    assert params({"txt-clip": "ellipsis,start"}).txt_clip == ("start", "ellipsis")
    assert params({"txt-clip": "ellipsis"}).txt_clip == ("end", "ellipsis")


def test_text_is_capped_and_cleaned():
    assert len(params({"txt": "x" * 5000}).txt) == MAX_TEXT_CHARS
    assert params({"txt": "a\tb\x00c\u200dd"}).txt == "a bc\u200dd"
    assert params({"txt": "one\r\ntwo"}).txt == "one\ntwo"
    assert params({"txt": "   "}).txt is None


# Fonts.

def test_every_shipped_face_loads_and_has_its_licence():
    for faces in FAMILIES.values():
        for face in faces:
            assert (FONTS / f"{face}.ttf").is_file()
    assert (FONTS / "LICENSE-Liberation.txt").read_text().count("SIL")
    assert "Bitstream" in (FONTS / "LICENSE-DejaVu.txt").read_text()


@pytest.mark.parametrize("value, face", [
    ("Helvetica", "LiberationSans-Regular"),
    ("Arial-BoldItalicMT", "LiberationSans-BoldItalic"),
    ("sans-serif,bold,italic", "LiberationSans-BoldItalic"),
    ("Times-Roman", "LiberationSerif-Regular"),
    ("TimesNewRomanPS-BoldMT", "LiberationSerif-Bold"),
    ("Georgia,italic", "LiberationSerif-Italic"),
    ("Courier-BoldOblique", "LiberationMono-BoldItalic"),
    ("monospace", "LiberationMono-Regular"),
    ("Futura Condensed Medium", "LiberationSans-Regular"),
    ("Avenir-Black", "LiberationSans-Bold"),
    ("DejaVuSansMono-Bold", "DejaVuSansMono-Bold"),
    ("DejaVuSerif", "DejaVuSerif"),
])
def test_font_names_map_to_the_nearest_shipped_face(value, face):
    assert font_resolve(value) == (face, False)


def test_an_unknown_font_is_the_default_family_and_says_it_is_a_substitute():
    assert font_resolve("HiraginoSans-W3") == ("LiberationSans-Regular", True)
    assert font_resolve("NoSuchFont,bold") == ("LiberationSans-Bold", True)


def test_names_drawn_in_the_same_face_share_a_key():
    assert params({"txt-font": "Helvetica"}).txt_font == params({"txt-font": "ArialMT"}).txt_font


def test_bold_draws_more_ink_than_regular():
    canvas = Image.new("RGB", (400, 100), GREY)
    regular = ink(canvas, draw(canvas, {"txt": "Heavy", "txt-size": "40"}))
    bold = ink(canvas, draw(canvas, {"txt": "Heavy", "txt-size": "40", "txt-font": "sans-serif,bold"}))
    assert bold.sum() > regular.sum() * 1.2


# Placement.

@pytest.mark.parametrize("align, rows, cols", [
    ("top,left", (0, 0.5), (0, 0.5)),
    ("top,right", (0, 0.5), (0.5, 1)),
    ("bottom,left", (0.5, 1), (0, 0.5)),
    ("bottom,right", (0.5, 1), (0.5, 1)),
    ("middle,center", (0.25, 0.75), (0.25, 0.75)),
])
def test_text_is_drawn_where_txt_align_says(align, rows, cols):
    image = photo()
    out = draw(image, {"txt": "Hello", "txt-size": "48", "txt-align": align, "txt-color": "ff0"})
    mask = ink(image, out)
    height, width = mask.shape
    assert mask.sum() > 500
    inside = np.zeros_like(mask)
    inside[int(rows[0] * height):int(rows[1] * height), int(cols[0] * width):int(cols[1] * width)] = True
    assert not (mask & ~inside).any()


def test_default_position_is_bottom_right_inside_the_padding():
    image = photo()
    left, top, right, bottom = bbox(ink(image, draw(image, {"txt": "Hello", "txt-color": "ff0"})))
    assert image.width - 10 - 6 <= right < image.width - 10 + 2
    assert image.height - 10 - 8 <= bottom < image.height - 10 + 2


def test_txt_pad_moves_text_away_from_the_edges():
    canvas = Image.new("RGB", (300, 200), GREY)
    near = bbox(ink(canvas, draw(canvas, {"txt": "HI", "txt-size": "30", "txt-align": "top,left", "txt-pad": "0"})))
    far = bbox(ink(canvas, draw(canvas, {"txt": "HI", "txt-size": "30", "txt-align": "top,left", "txt-pad": "50"})))
    assert far[0] - near[0] == 50 and far[1] - near[1] == 50


def test_txt_x_and_txt_y_place_the_text_and_override_the_alignment():
    canvas = Image.new("RGB", (300, 200), GREY)
    corner = bbox(ink(canvas, draw(canvas, {"txt": "HI", "txt-size": "30", "txt-align": "top,left", "txt-pad": "0"})))
    placed = bbox(ink(canvas, draw(canvas, {"txt": "HI", "txt-size": "30", "txt-x": "120", "txt-y": "80",
                                            "txt-align": "bottom,right"})))
    assert (placed[0] - corner[0], placed[1] - corner[1]) == (120, 80)


def test_text_wholly_off_the_image_returns_it_unchanged():
    canvas = Image.new("RGB", (100, 100), GREY)
    assert draw(canvas, {"txt": "HI", "txt-x": "500"}) is canvas
    assert draw(canvas, {}) is canvas


# Ink.

def test_txt_color_is_the_colour_of_the_ink():
    image = photo()
    out = draw(image, {"txt": "MMMM", "txt-size": "80", "txt-color": "00ff00", "txt-align": "top,left"})
    changed = np.asarray(out)[ink(image, out, threshold=100)]
    # Glyph cores are solid ink; only anti-aliased edges mix with the photo.
    solid = (np.abs(changed.astype(int) - (0, 255, 0)).max(axis=1) <= 2).mean()
    assert solid > 0.6


def test_txt_color_alpha_blends_the_ink():
    canvas = Image.new("RGB", (300, 100), (0, 0, 0))
    out = draw(canvas, {"txt": "MMMM", "txt-size": "60", "txt-color": "80ffffff", "txt-align": "top,left"})
    assert np.asarray(out).max() in range(126, 131)


def test_larger_txt_size_draws_more_ink():
    image = photo()
    small = ink(image, draw(image, {"txt": "Hello", "txt-size": "20", "txt-color": "ff0"})).sum()
    large = ink(image, draw(image, {"txt": "Hello", "txt-size": "40", "txt-color": "ff0"})).sum()
    assert large > 3 * small > 0


def test_txt_line_outlines_the_glyphs_in_txt_line_color():
    canvas = Image.new("RGB", (300, 100), GREY)
    query = {"txt": "HELLO", "txt-size": "50", "txt-align": "middle,center"}
    plain = np.asarray(draw(canvas, query))
    outlined = np.asarray(draw(canvas, {**query, "txt-line": "3", "txt-line-color": "ff0000"}))
    red = (outlined[..., 0] > 200) & (outlined[..., 1] < 60)
    assert red.sum() > 300 and not ((plain[..., 0] > 200) & (plain[..., 1] < 60)).any()
    # The fill is still there, inside the outline.
    assert (outlined.max(axis=2) < 30).sum() > 300


def test_txt_shad_darkens_around_the_text():
    canvas = Image.new("RGB", (300, 100), (255, 255, 255))
    query = {"txt": "HELLO", "txt-size": "50", "txt-color": "fff", "txt-align": "middle,center"}
    assert np.asarray(draw(canvas, query)).min() == 255
    shadowed = np.asarray(draw(canvas, {**query, "txt-shad": "5"}))
    stronger = np.asarray(draw(canvas, {**query, "txt-shad": "10"}))
    assert shadowed.min() < 200
    assert (stronger < 250).sum() > (shadowed < 250).sum()


# Width, fit, clip.

def test_txt_width_limits_the_text_and_txt_clip_chooses_what_is_cut():
    p = params({"txt": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "txt-size": "20", "txt-width": "100"})
    end = text_layout((400, 100), p).lines[0][0]
    assert end.startswith("ABC") and len(end) < 26
    start = text_layout((400, 100), params({**vars_of(p), "txt-clip": "start"})).lines[0][0]
    assert start.endswith("XYZ") and len(start) < 26
    middle = text_layout((400, 100), params({**vars_of(p), "txt-clip": "middle,ellipsis"})).lines[0][0]
    assert middle.startswith("AB") and middle.endswith("YZ") and "…" in middle
    ellipsis = text_layout((400, 100), params({**vars_of(p), "txt-clip": "ellipsis"})).lines[0][0]
    assert ellipsis.startswith("ABC") and ellipsis.endswith("…")
    canvas = Image.new("RGB", (400, 100), GREY)
    left, _, right, _ = bbox(ink(canvas, draw(canvas, {**vars_of(p), "txt-align": "top,left"})))
    assert right - left < 100


def vars_of(p):
    return {"txt": p.txt, "txt-size": str(p.txt_size), "txt-width": str(p.txt_width)}


def test_default_width_is_the_image_less_its_padding():
    canvas = Image.new("RGB", (200, 60), GREY)
    text = "A caption far too long for this small image"
    left, _, right, _ = bbox(ink(canvas, draw(canvas, {"txt": text, "txt-size": "20"})))
    assert left >= 10 - 2 and right <= 190 + 1


def test_txt_fit_max_shrinks_the_text_to_fit_instead_of_clipping_it():
    text = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    fitted = text_layout((400, 100), params({"txt": text, "txt-size": "40", "txt-width": "200", "txt-fit": "max"}))
    clipped = text_layout((400, 100), params({"txt": text, "txt-size": "40", "txt-width": "200"}))
    assert fitted.lines[0][0] == text and clipped.lines[0][0] != text
    assert fitted.font.size < 40 == clipped.font.size
    canvas = Image.new("RGB", (400, 100), GREY)
    left, _, right, _ = bbox(ink(canvas, draw(canvas, {"txt": text, "txt-size": "40", "txt-width": "200",
                                                       "txt-fit": "max", "txt-align": "top,left"})))
    assert right - left <= 200


# Spacing.

def test_txt_track_spaces_the_letters():
    canvas = Image.new("RGB", (500, 100), GREY)
    query = {"txt": "HELLO", "txt-size": "30", "txt-align": "top,left"}
    plain = bbox(ink(canvas, draw(canvas, query)))
    tracked = bbox(ink(canvas, draw(canvas, {**query, "txt-track": "10"})))
    assert (tracked[2] - tracked[0]) - (plain[2] - plain[0]) == pytest.approx(40, abs=3)


def test_txt_lead_spaces_the_lines_of_a_multi_line_text():
    canvas = Image.new("RGB", (300, 300), GREY)
    query = {"txt": "HI\nHI", "txt-size": "30", "txt-align": "top,left"}

    def second_line_top(out):
        rows = ink(canvas, out).any(axis=1)
        starts = np.nonzero(rows[1:] & ~rows[:-1])[0]
        return starts[-1]

    assert second_line_top(draw(canvas, {**query, "txt-lead": "25"})) - second_line_top(draw(canvas, query)) == 25


# Device pixel ratio.

def test_dpr_multiplies_the_lengths_only_with_a_w_or_h():
    query = {"txt": "Hello", "txt-size": "12", "txt-pad": "10", "txt-track": "1"}
    plain = text_layout((400, 400), params(query, dpr=2.0))
    doubled = text_layout((400, 400), params(query, dpr=2.0, w=200))
    assert plain.font.size == 12 and doubled.font.size == 24 and doubled.track == 2
    # Bottom-aligned: padding plus line height above the bottom edge, both doubled.
    assert 400 - doubled.lines[0][2] == pytest.approx(2 * (400 - plain.lines[0][2]), abs=2)


# Modes.

def test_on_a_cutout_the_ink_is_opaque_and_its_edges_take_no_colour_from_transparent_pixels():
    cutout = Image.new("RGBA", (300, 100), (0, 0, 0, 0))
    out = draw(cutout, {"txt": "HELLO", "txt-size": "50", "txt-color": "fff", "txt-align": "middle,center"})
    pixels = np.asarray(out)
    drawn = pixels[..., 3] > 0
    assert out.mode == "RGBA" and (pixels[..., 3] == 255).sum() > 300
    # Every partly covered pixel is white with partial alpha, not grey from the black underneath.
    assert (pixels[drawn][:, :3] >= 250).all()


def test_a_grey_image_takes_coloured_text():
    grey = Image.new("L", (200, 80), 128)
    out = draw(grey, {"txt": "HI", "txt-size": "40", "txt-color": "f00", "txt-align": "middle,center"})
    assert out.mode == "RGB" and (np.asarray(out)[..., 0] > 240).sum() > 100
    assert draw(Image.new("LA", (200, 80)), {"txt": "HI", "txt-size": "40"}).mode == "RGBA"


def test_size_is_unchanged_and_matches_apply():
    image = photo()
    for query in ({"txt": "Hi"}, {"txt": "Hi", "txt-size": "300", "txt-line": "20", "txt-shad": "10"}, {}):
        p = params(query)
        assert STAGE.size(image.size, p, StageContext()) == STAGE.apply(image, p, StageContext()).size


# Cache key.

def test_effective_keeps_only_what_draws():
    fields = STAGE.fields
    assert STAGE.effective(params({"txt-size": "40"}), "jpeg") == {f: fields[f] for f in STAGE.keyed_fields}
    one_line = STAGE.effective(params({"txt": "Hi", "txt-lead": "9", "txt-line-color": "f00"}), "jpeg")
    assert one_line["txt_lead"] == 0 and one_line["txt_line_color"] == (255, 255, 255, 255)
    two_lines = STAGE.effective(params({"txt": "Hi\nthere", "txt-lead": "9", "txt-line": "1",
                                        "txt-line-color": "f00"}), "jpeg")
    assert two_lines["txt_lead"] == 9 and two_lines["txt_line_color"] == (255, 0, 0, 255)
    placed = STAGE.effective(params({"txt": "Hi", "txt-x": "5", "txt-y": "5", "txt-align": "top,left"}), "jpeg")
    assert placed["txt_align"] == ("bottom", "right")
    assert STAGE.effective(params({"txt": "Hi", "txt-x": "5", "txt-align": "top,left"}), "jpeg")["txt_align"] == (
        "top", "right")


# Cost.

@pytest.mark.parametrize("mode, query", [
    # The longest text at the largest size, with the widest outline and strongest shadow.
    ("RGB", {"txt": "W" * 5000, "txt-size": "100000", "txt-line": "1000", "txt-shad": "10",
             "txt-clip": "middle,ellipsis", "txt-align": "middle,center"}),
    # Lines of large type filling the canvas, on a cutout (the dearer compositing).
    ("RGBA", {"txt": ("W" * 36 + "\n") * 27, "txt-size": "256", "txt-line": "100", "txt-shad": "10",
              "txt-align": "top,left"}),
])
def test_worst_case_stays_within_the_cpu_budget(mode, query):
    """On an 8192² canvas (the queries bench/hostile.py runs)."""
    canvas = Image.new(mode, (8192, 8192), (*GREY, 255)[:len(mode)])
    p = params(query)
    start = time.process_time()
    out = STAGE.apply(canvas, p, StageContext())
    assert time.process_time() - start < 3.0
    assert out.size == canvas.size and ImageChops.difference(canvas, out).getbbox(alpha_only=False) is not None


def test_the_area_drawn_is_bounded():
    p = params({"txt": ("W" * 36 + "\n") * 27, "txt-size": "256", "txt-line": "100", "txt-shad": "10",
                "txt-align": "top,left"})
    layout = text_layout((8192, 8192), p)
    assert 1 < len(layout.lines) < 27
    assert layout.outline == 256 // 8
