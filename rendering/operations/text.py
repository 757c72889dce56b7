"""Text: one caption drawn over the image (imgix's text and typesetting parameters, txt…)."""

from __future__ import annotations

import functools
import math
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from rendering.stage import Box, Param, Stage, StageContext
from rendering.values import MAX_DIMENSION, choice, color, decimal, integer, items, text

FONTS = Path(__file__).resolve().parent.parent / "fonts"

# imgix documents no limit (a URL holds at most 8000 characters). A caption is a line or a few:
# 1024 characters is more than any needs, and keeps each per-character step (clipping, tracking)
# small whatever the URL holds. The rest is cut.
MAX_TEXT_CHARS = 1024
# The size glyphs are drawn at, after dpr: a line of this size is 8192 × ~2600 pixels per layer,
# which keeps the worst case (three layers, an 8192² canvas) within the render's CPU and memory.
MAX_FONT_PIXELS = 2048
# The area the lines' masks may cover, in pixels: one full-width line at MAX_FONT_PIXELS with the
# widest outline and shadow is ~29 MP. More text than this (lines of huge type filling an 8192²
# canvas) is not drawn, which keeps painting (three layers) within the render's CPU budget.
MAX_TEXT_AREA = 32_000_000
# Shadow "strength" is imgix's 0–10 (the spec's range): a black halo's blur radius in pixels.
MAX_SHADOW = 10.0
SHADOW_GAIN, SHADOW_OPACITY = 3, 200
MAX_OUTLINE = 100  # imgix gives none; drawn at most 1/8 of the font size (text_layout)
ELLIPSIS = "…"
FONT_CACHE_SIZE = 32  # faces × sizes kept loaded per thread
PAINT_BAND = 256  # rows of an RGBA image composited at a time

VERTICAL = ("top", "middle", "bottom")
HORIZONTAL = ("left", "center", "right")
CLIP_MODES = ("start", "middle", "end")

# Shipped faces (rendering/fonts/README.md): family → (regular, bold, italic, bold italic).
FAMILIES = {
    "sans": ("LiberationSans-Regular", "LiberationSans-Bold",
             "LiberationSans-Italic", "LiberationSans-BoldItalic"),
    "serif": ("LiberationSerif-Regular", "LiberationSerif-Bold",
              "LiberationSerif-Italic", "LiberationSerif-BoldItalic"),
    "mono": ("LiberationMono-Regular", "LiberationMono-Bold",
             "LiberationMono-Italic", "LiberationMono-BoldItalic"),
    # DejaVu core has no italic faces: an italic DejaVu is drawn upright.
    "dejavu-sans": ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSans", "DejaVuSans-Bold"),
    "dejavu-serif": ("DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif", "DejaVuSerif-Bold"),
    "dejavu-mono": ("DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono", "DejaVuSansMono-Bold"),
}
DEFAULT_FONT = FAMILIES["sans"][0]  # imgix's default is Helvetica; Liberation Sans has its metrics.

# Name prefixes (lower case, letters and digits only) → the nearest shipped family, checked in
# this order (so "dejavusansmono" is a monospace face, not DejaVu Sans). The names are those of
# imgix's font list (imgix-url-params "fontValues") and the CSS generic families.
FAMILY_PREFIXES = (
    ("dejavu-mono", ("dejavusansmono",)),
    ("dejavu-serif", ("dejavuserif",)),
    ("dejavu-sans", ("dejavusans", "dejavu")),
    ("mono", ("monospace", "courier", "andalemono", "menlo", "monaco", "ptmono", "nimbusmon",
              "freemono", "notomono", "liberationmono", "osakamono", "mplus1code",
              "americantypewriter", "lucidaconsole", "consolas")),
    ("serif", ("serif", "cursive", "times", "georgia", "baskerville", "bodoni", "didot",
               "palatino", "cochin", "hoeflertext", "iowanoldstyle", "charter", "athelas",
               "bigcaslon", "centurysch", "c059", "p052", "nimbusrom", "urwpalladio",
               "urwbookman", "ptserif", "liberationserif", "freeserif", "stixgeneral",
               "superclarendon", "rockwell", "marion", "newpeninim", "notoserif", "garamond",
               "cambria", "bookantiqua", "snellroundhand", "zapfino", "applechancery",
               "savoyelet", "brushscript", "urwchancery", "z003")),
    ("sans", ("sansserif", "sans", "fantasy", "helvetica", "arial", "avenir", "futura", "gillsans",
              "verdana", "tahoma", "trebuchet", "lucidagrande", "geneva", "optima", "skia",
              "seravek", "ptsans", "lato", "nimbussan", "nimbussans", "freesans", "liberationsans",
              "urwgothic", "galvji", "microsoftsans", "dinalternate", "dincondensed", "impact",
              "arialnarrow", "calibri", "segoe", "roboto", "opensans", "notosans", "ubuntu")),
)
BOLD_WORDS = ("bold", "black", "heavy", "demi", "semibold", "extrabold", "ultrabold")
ITALIC_WORDS = ("italic", "oblique", "ital", "obli", "inclined")


def font_resolve(value: str | None) -> tuple[str, bool]:
    """The shipped face for a txt-font value, and whether it is a substitute for an unknown name.

    The value is a CSS family (serif, sans-serif, monospace, cursive, fantasy) or a font name
    (imgix's PostScript names, `Arial-BoldMT`, or spaced, `Futura Condensed Medium`), then
    optional `,bold` and `,italic`. A known name maps to the nearest shipped family and keeps its
    weight and slant; an unknown one is drawn in the default family, as imgix itself does."""
    if not value:
        return DEFAULT_FONT, False
    name, *options = [part.strip().lower() for part in value.split(",")]
    options = set(options)
    flat = re.sub(r"[^a-z0-9]", "", name)
    # The style is in the name's suffix ("Arial-BoldItalicMT", "Futura Condensed Medium").
    style = re.split(r"[-\s_]", name, maxsplit=1)[1] if re.search(r"[-\s_]", name) else ""
    style = re.sub(r"[^a-z0-9]", "", style)
    bold = "bold" in options or any(word in style for word in BOLD_WORDS)
    italic = ("italic" in options or any(word in style for word in ITALIC_WORDS)
              or style.endswith(("it", "ita")))
    if name == "cursive":
        italic = True
    family, substitute = "sans", True
    for candidate, prefixes in FAMILY_PREFIXES:
        if flat.startswith(prefixes):
            family, substitute = candidate, False
            break
    return FAMILIES[family][bold + 2 * italic], substitute


_fonts = threading.local()


def _font(face: str, size: int) -> ImageFont.FreeTypeFont:
    """The face at `size`, loaded once per thread: a FreeType face must not be used by two
    threads at once, and renders run in threads."""
    cache = getattr(_fonts, "cache", None)
    if cache is None:
        cache = _fonts.cache = {}
    if (face, size) not in cache:
        if len(cache) >= FONT_CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[face, size] = ImageFont.truetype(str(FONTS / f"{face}.ttf"), size)
    return cache[face, size]


def _text_parse(value: str) -> str | None:
    """One or more lines (a newline in the decoded value starts a new line, for txt-lead), other
    control characters dropped, at most MAX_TEXT_CHARS."""
    value = text(value)
    if value is None:
        return None
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    # Control characters go; format characters stay (a joiner shapes emoji and Persian).
    value = "".join(ch for ch in value if ch == "\n" or unicodedata.category(ch) != "Cc")
    value = "\n".join(line.rstrip() for line in value[:MAX_TEXT_CHARS].split("\n")).strip("\n")
    return value if value.strip() else None


def _font_parse(value: str) -> str | None:
    """The shipped face's name: two names drawn in the same face share one cache key."""
    return font_resolve(value)[0] if value.strip() else None


def _width_parse(value: str) -> int | None:
    """Pixels; 0 (imgix's floor) is no width of its own: the image's, less the padding."""
    return integer(0, MAX_DIMENSION)(value) or None


def _align(words: tuple) -> tuple[str, str]:
    """(vertical, horizontal); the last word of each kind wins, imgix's bottom,right otherwise."""
    vertical = [w for w in words if w in VERTICAL]
    horizontal = [w for w in words if w in HORIZONTAL]
    return (vertical[-1] if vertical else "bottom", horizontal[-1] if horizontal else "right")


def _clip(words: tuple) -> tuple[str, ...]:
    """(mode,) or (mode, "ellipsis"): end unless start or middle is given."""
    modes = [w for w in words if w in CLIP_MODES]
    return (modes[-1] if modes else "end",) + (("ellipsis",) if "ellipsis" in words else ())


@dataclass(frozen=True)
class Layout:
    """Where each line's glyphs go, in device pixels on the image."""

    font: ImageFont.FreeTypeFont
    lines: tuple[tuple[str, int, int], ...]  # (text, left, top of the line box)
    track: int
    outline: int
    shadow: float


class TextStage(Stage):
    name = "text"
    params = (
        Param("txt", _text_parse, None, aliases=("t",)),
        Param("txt-align", items(VERTICAL + HORIZONTAL), ("bottom", "right"),
              aliases=("txtalign", "ta")),
        Param("txt-clip", items(CLIP_MODES + ("ellipsis",)), ("end",), aliases=("txtclip", "tcl")),
        Param("txt-color", color, (0, 0, 0, 255), aliases=("txtcolor", "txt-clr", "txtclr", "tc")),
        Param("txt-fit", choice(("max",)), None, aliases=("txtfit",)),
        Param("txt-font", _font_parse, DEFAULT_FONT, aliases=("tf", "txtfont")),
        Param("txt-lead", integer(0, MAX_DIMENSION), 0, aliases=("txtlead",)),
        Param("txt-line", integer(0, MAX_OUTLINE), 0, aliases=("txtline", "tl")),
        Param("txt-line-color", color, (255, 255, 255, 255),
              aliases=("txtlinecolor", "txt-line-clr", "txtlineclr")),
        Param("txt-pad", integer(0, MAX_DIMENSION), 10, aliases=("txtpad", "tp")),
        Param("txt-shad", decimal(0.0, MAX_SHADOW), 0.0, aliases=("txtshad", "tsh")),
        Param("txt-size", integer(1, MAX_FONT_PIXELS), 12, aliases=("tsz", "txtsize")),
        # imgix's suggested floor: tighter than -4 px the glyphs run into each other.
        Param("txt-track", integer(-4, MAX_DIMENSION), 0, aliases=("txttrack", "tt")),
        Param("txt-width", _width_parse, None, aliases=("txtwidth",)),
        Param("txt-x", integer(-MAX_DIMENSION, MAX_DIMENSION), None, aliases=("txtx",)),
        Param("txt-y", integer(-MAX_DIMENSION, MAX_DIMENSION), None, aliases=("txty",)),
    )

    def parse(self, values, parsed):
        out = super().parse(values, parsed)
        if "txt_align" in out:
            out["txt_align"] = _align(out["txt_align"])
        if "txt_clip" in out:
            out["txt_clip"] = _clip(out["txt_clip"])
        return out

    def active(self, p) -> bool:
        return p.txt is not None

    def effective(self, p, fmt):
        """Only what draws: nothing without txt; an outline colour without an outline, leading
        on one line, the alignment txt-x/txt-y replace, are their defaults."""
        fields = self.fields
        if not self.active(p):
            return {f: fields[f] for f in self.keyed_fields}
        out = {f: getattr(p, f) for f in self.keyed_fields}
        if not p.txt_line:
            out["txt_line_color"] = fields["txt_line_color"]
        if "\n" not in p.txt:
            out["txt_lead"] = fields["txt_lead"]
        vertical, horizontal = p.txt_align
        out["txt_align"] = (
            "bottom" if p.txt_y is not None else vertical,
            "right" if p.txt_x is not None else horizontal,
        )
        return out

    def size(self, size: Box, p, context: StageContext) -> Box:
        return size

    def apply(self, image: Image.Image, p, context: StageContext) -> Image.Image:
        if not self.active(p):
            return image
        layout = text_layout(image.size, p)
        if not layout.lines:
            return image
        mode = {"L": "RGB", "LA": "RGBA"}.get(image.mode, image.mode)
        result = image.convert(mode) if mode != image.mode else image.copy()
        # The ink and its outline once per line; every shadow first, then each line's outline and
        # fill, so no shadow darkens a glyph.
        outer = [(_line_mask(layout, line, layout.outline), x, y) for line, x, y in layout.lines]
        if layout.shadow:
            for (mask, (dx, dy)), x, y in outer:
                _paint(result, (0, 0, 0, 255), _shadow(mask, layout.shadow), (x + dx, y + dy))
        for ((mask, (dx, dy)), x, y), (line, _, _) in zip(outer, layout.lines, strict=True):
            if layout.outline:
                _paint(result, p.txt_line_color, mask, (x + dx, y + dy))
                mask, (dx, dy) = _line_mask(layout, line, 0)
            _paint(result, p.txt_color, mask, (x + dx, y + dy))
        return result


def text_scale(p) -> float:
    """imgix's lengths are CSS pixels: dpr multiplies them when there is a w or h."""
    return p.dpr if (p.w or p.h) else 1.0


@functools.lru_cache(maxsize=8192)
def _char_advance(face: str, size: int, ch: str) -> float:
    return _font(face, size).getlength(ch)


def _advance(font: ImageFont.FreeTypeFont, ch: str) -> float:
    return _char_advance(Path(font.path).stem, font.size, ch)


def _width(font: ImageFont.FreeTypeFont, line: str, track: int) -> int:
    """The line's advance: as laid out (kerned, shaped) untracked; character by character, as
    `_line_mask` draws it, when tracked."""
    if not line:
        return 0
    if not track:
        return math.ceil(font.getlength(line))
    return math.ceil(sum(_advance(font, ch) for ch in line) + track * (len(line) - 1))


def _clipped(font: ImageFont.FreeTypeFont, line: str, track: int, box: int, clip: tuple) -> str:
    """The longest part of `line` that fits `box` pixels, cut where txt-clip says (per character,
    as imgix does), with an ellipsis where the cut is when asked. Binary search: a few layouts
    of the line, however long it is."""
    if _width(font, line, track) <= box:
        return line
    mode = clip[0]
    mark = ELLIPSIS if "ellipsis" in clip else ""

    def cut(keep: int) -> str:
        if mode == "start":
            return mark + line[len(line) - keep:]
        if mode == "middle":
            head = (keep + 1) // 2
            return line[:head] + mark + line[len(line) - (keep - head):]
        return line[:keep] + mark

    low, high = 0, len(line)
    while low < high:
        middle = (low + high + 1) // 2
        if _width(font, cut(middle), track) <= box:
            low = middle
        else:
            high = middle - 1
    shown = cut(low)
    return shown if _width(font, shown, track) <= box or not mark else ""


def text_layout(size: Box, p) -> Layout:
    """Font, lines (fitted or clipped to the text box) and their positions on an image of
    `size`, in device pixels. Lines wholly off the image are left out."""
    width, height = size
    scale = text_scale(p)
    pad = round(p.txt_pad * scale)
    track = round(p.txt_track * scale)
    lead = round(p.txt_lead * scale)
    font_size = max(1, min(MAX_FONT_PIXELS, round(p.txt_size * scale)))
    box = round(p.txt_width * scale) if p.txt_width else width - 2 * pad
    box = max(1, min(box, MAX_DIMENSION))
    lines = p.txt.split("\n")

    font = _font(p.txt_font, font_size)
    if p.txt_fit == "max":
        # Shrink until the widest line fits; hinting makes width not quite proportional to size.
        for _ in range(8):
            widest = max(_width(font, line, track) for line in lines)
            if widest <= box or font_size == 1:
                break
            font_size = max(1, min(font_size - 1, math.floor(font_size * box / widest)))
            font = _font(p.txt_font, font_size)
    lines = [_clipped(font, line, track, box, p.txt_clip) for line in lines]

    ascent, descent = font.getmetrics()
    line_height = ascent + descent
    widths = [_width(font, line, track) for line in lines]
    block_w = max(widths)
    block_h = len(lines) * line_height + (len(lines) - 1) * lead
    vertical, horizontal = p.txt_align
    if p.txt_x is not None:
        left = round(p.txt_x * scale)
    else:
        left = {"left": pad, "center": (width - block_w) // 2, "right": width - pad - block_w}[horizontal]
    if p.txt_y is not None:
        top = round(p.txt_y * scale)
    else:
        top = {"top": pad, "middle": (height - block_h) // 2, "bottom": height - pad - block_h}[vertical]

    # An outline wider than an eighth of the glyphs' size buries them (and costs area).
    outline = min(round(p.txt_line * scale), max(1, font_size // 8))
    shadow = p.txt_shad * scale
    margin = outline + math.ceil(3 * shadow)
    reach = line_height + 2 * margin
    placed, area = [], 0
    for index, (line, line_w) in enumerate(zip(lines, widths, strict=True)):
        y = top + index * (line_height + lead)
        x = left + {"left": 0, "center": (block_w - line_w) // 2, "right": block_w - line_w}[horizontal]
        if not line.strip() or y + reach < 0 or y - reach > height:
            continue
        if x + line_w + reach < 0 or x - reach > width:
            continue
        # The cost is the area drawn: past MAX_TEXT_AREA (a full-width line at the largest size
        # fits), further lines are not drawn.
        area += (line_w + 2 * margin) * reach
        if placed and area > MAX_TEXT_AREA:
            break
        placed.append((line, x, y))
    return Layout(font, tuple(placed), track, outline, shadow)


def _line_mask(layout: Layout, line: str, outline: int) -> tuple[Image.Image, tuple[int, int]]:
    """The line's coverage (glyphs widened by `outline`) on a mask just large enough for its ink,
    the outline and the shadow's blur; and where the mask's corner is relative to the line box's."""
    font, track = layout.font, layout.track
    if track:
        # Letter-spacing: each character at its own advance plus the tracking (no kerning).
        glyphs, x = [], 0.0
        for ch in line:
            glyphs.append((x, ch))
            x += _advance(font, ch) + track
    else:
        glyphs = [(0.0, line)]
    boxes = [font.getbbox(part, stroke_width=outline) for _, part in glyphs]
    blur = math.ceil(3 * layout.shadow)
    left = math.floor(min(x + box[0] for (x, _), box in zip(glyphs, boxes, strict=True))) - blur
    top = min(box[1] for box in boxes) - blur
    right = math.ceil(max(x + box[2] for (x, _), box in zip(glyphs, boxes, strict=True))) + blur
    bottom = max(box[3] for box in boxes) + blur
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)))
    draw = ImageDraw.Draw(mask)
    for x, part in glyphs:
        draw.text((x - left, -top), part, fill=255, font=font, stroke_width=outline, stroke_fill=255)
    return mask, (left, top)


def _shadow(mask: Image.Image, radius: float) -> Image.Image:
    """A soft halo around the ink: its coverage blurred by `radius` and strengthened (a plain
    blur spreads thin strokes to nothing), up to SHADOW_OPACITY. A wide blur runs on a reduced
    copy, scaled back: a soft shadow loses nothing, and the cost stays that of the line's area."""
    factor = max(1, min(8, int(radius // 2)))
    if factor == 1:
        halo = mask.filter(ImageFilter.GaussianBlur(radius))
    else:
        small = mask.reduce(factor).filter(ImageFilter.GaussianBlur(radius / factor))
        halo = small.resize(mask.size, Image.Resampling.BILINEAR)
    return halo.point(lambda value: min(SHADOW_OPACITY, value * SHADOW_GAIN))


def _paint(image: Image.Image, rgba: tuple, mask: Image.Image, origin: tuple[int, int]) -> None:
    """`rgba` drawn through `mask` at `origin` (which may be partly off the image), in place."""
    x, y = origin
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + mask.width, image.width), min(y + mask.height, image.height)
    if left >= right or top >= bottom:
        return
    mask = mask.crop((left - x, top - y, right - x, bottom - y))
    if rgba[3] < 255:
        mask = mask.point(lambda value: value * rgba[3] // 255)
    box = (left, top, right, bottom)
    if image.mode == "RGBA":
        # A paste on premultiplied pixels is exactly "over": a transparent pixel's own colour
        # cannot tint the ink's edges, and the alpha becomes ink + base × (1 − ink).
        # In bands, so the two converted copies stay small however large the line is.
        for band in range(top, bottom, PAINT_BAND):
            band_box = (left, band, right, min(band + PAINT_BAND, bottom))
            region = image.crop(band_box).convert("RGBa")
            region.paste(rgba[:3], (0, 0), mask.crop((0, band - top, right - left, band_box[3] - top)))
            image.paste(region.convert("RGBA"), band_box)
    else:
        image.paste(rgba[:3], box, mask)


STAGE = TextStage()
