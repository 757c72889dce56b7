"""Rendering URL parameters: imgix names and aliases in, one normalised value object out.

One small parser per option. An unparseable value is ignored (the default applies) and a number
is clamped to its hard range (SPEC: "we decide"); only bad base64 is an error (400).
"""

import base64
import binascii
import functools
from dataclasses import dataclass, field, fields
from urllib.parse import unquote_plus

from django.conf import settings

from core.errors import BadRequestError
from rendering.colors import color_parse
from rendering.encode import quality_for

# imgix's aliases (research §0): the left name is read as the right one.
ALIASES = {
    "background-remove": "bg-remove",
    "width": "w",
    "height": "h",
    "f": "fit",
    "max-width": "max-w",
    "max-height": "max-h",
    "min-width": "min-w",
    "min-height": "min-h",
    "m": "mark",
    "ma": "mark-align",
    "markalign": "mark-align",
    "malph": "mark-alpha",
    "markalpha": "mark-alpha",
    "mp": "mark-pad",
    "markpad": "mark-pad",
    "ms": "mark-scale",
    "markscale": "mark-scale",
    "mw": "mark-w",
    "mh": "mark-h",
    "mx": "mark-x",
    "my": "mark-y",
    "mf": "mark-fit",
    "markfit": "mark-fit",
    "mtile": "mark-tile",
    "trimcolor": "trim-color",
    "trimmd": "trim-md",
    "trimpad": "trim-pad",
    "trimsd": "trim-sd",
    "trimtol": "trim-tol",
}

MAX_DIMENSION = 8192
FORMATS = {"jpg", "pjpg", "png", "png8", "png32", "webp", "avif", "gif", "json"}
FORMAT_ALIASES = {"jpeg": "jpg"}
FITS = {"clip", "crop", "fill", "fillmax", "max", "min", "scale", "clamp", "facearea"}
CROPS = {"top", "bottom", "left", "right", "faces", "entropy", "edges", "focalpoint"}
HORIZONTAL_ALIGNS = {"left", "center", "right"}
VERTICAL_ALIGNS = {"top", "middle", "bottom"}
ALIGNS = HORIZONTAL_ALIGNS | VERTICAL_ALIGNS
SMART_CROPS = ("focalpoint", "entropy", "edges")  # "faces" has no detector: it falls through.
TRANSPARENT_WHITE = (255, 255, 255, 0)  # imgix's default fill, `0FFF`: white once flattened.
MARK_FITS = {"clip", "crop", "fill", "max", "scale"}
FILLS = {"solid", "blur"}
REFINEMENTS = {"none", "post-process", "clean-edges", "alpha-matting"}
TRIMS = {"alpha", "color", "auto", "colorunlessalpha"}
TRIM_MD, TRIM_SD = 11.0, 10.0  # imgix's defaults for trim=auto.
PAD_SIDES = ("left", "top", "right", "bottom")
TRUE_VALUES = {"true", "1"}
FALSE_VALUES = {"false", "0"}


class ParamError(BadRequestError):
    code = "bad_parameter"


@dataclass(frozen=True)
class Dim:
    """A size: pixels, or a ratio (0–1] of a reference size (the source, or the mark itself)."""

    value: float
    ratio: bool = False

    def pixels(self, reference: int) -> int:
        return max(1, round(self.value * reference)) if self.ratio else int(self.value)


@dataclass(frozen=True)
class RenderParams:
    # Background removal.
    bg_remove: bool = False
    bg_remove_model: str = ""
    bg_remove_fallback: bool = False
    # An origin more transparent than this share of its pixels is served as it is, without a job.
    bg_remove_threshold: float = 0.2
    # imgix's foreground hints: accepted; rembg's models have no use for them (docs/rendering.md).
    bg_remove_fg_type: str = "auto"
    bg_remove_semi_transparency: bool = True
    # "mask": the greyscale alpha matte instead of the cutout (remove.bg's channels=alpha).
    bg_remove_output: str = ""
    # Size, crop and fill.
    w: Dim | None = None
    h: Dim | None = None
    dpr: float = 1.0
    fit: str = "clip"
    crop: tuple = ()
    fp_x: float = 0.5
    fp_y: float = 0.5
    fp_z: float = 1.0
    max_w: int | None = None
    max_h: int | None = None
    min_w: int | None = None
    min_h: int | None = None
    ar: tuple | None = None  # (width, height)
    rect: tuple | None = None  # (x, y, w, h) as Dims of the source
    fill: str = ""
    fill_color: tuple | None = None  # RGBA
    bg: tuple | None = None  # RGBA
    # Trim (first, on the decoded image or cutout) and pad (after sizing).
    trim: str = ""
    trim_alpha: int = 0
    trim_color: tuple | None = None  # RGBA; None: the colour of the top-left pixel (imgix).
    trim_tol: float = 0.0
    trim_md: float = TRIM_MD
    trim_sd: float = TRIM_SD
    trim_pad: int = 0
    pad: tuple = (0, 0, 0, 0)  # left, top, right, bottom
    # Output.
    fm: str = ""
    q: int | None = None
    lossless: bool = False
    auto: frozenset = field(default_factory=frozenset)
    # Watermark.
    mark: str = ""
    mark_align: tuple = ("bottom", "right")
    mark_alpha: int = 100
    mark_pad: int = 5
    mark_scale: int | None = None
    mark_w: Dim | None = None
    mark_h: Dim | None = None
    mark_x: int | None = None
    mark_y: int | None = None
    mark_fit: str = "clip"
    mark_tile: str = ""
    mark_rot: float = 0.0
    # Access (not part of what the image looks like).
    expires: int | None = None

    @property
    def auto_format(self) -> bool:
        return "format" in self.auto

    @property
    def auto_compress(self) -> bool:
        return "compress" in self.auto

    @property
    def has_operations(self) -> bool:
        """Whether anything besides encoding changes the pixels."""
        return any([self.w, self.h, self.rect, self.bg, self.mark, self.ar, self.bg_remove_output, self.trim,
                    any(self.pad)])

    def effective(self, fmt: str) -> "RenderParams":
        """The same operation with every value that cannot change the output reset to its
        default, for the output format `fmt` (as `format_negotiate` gives it; "" when it is
        chosen by the image): what the render cache is keyed by, so ineffective parameters
        (a focal point without crop=focalpoint, mark-* without a mark, dpr without a size, q
        for PNG, …) and defaults spelled out make no new stored render."""
        if fmt == "json":
            return RenderParams(bg_remove=self.bg_remove)  # The source's metadata, nothing else.
        sized = bool(self.w or self.h or self.ar)  # Otherwise fit and crop have no box to work in.
        crop = _crop_effective(self.crop) if sized and self.fit == "crop" else ()
        focal = crop == ("focalpoint",)
        bounded = self.fit == "crop" and bool(self.w or self.h)  # min/max only bound a w/h box.
        fill = self.fit in ("fill", "fillmax") and sized
        fill_style = "blur" if fill and self.fill == "blur" else ""  # solid is what "" draws.
        fill_color = self.fill_color if fill and fill_style != "blur" else None
        values = dict(
            bg_remove=self.bg_remove,
            bg_remove_threshold=self.bg_remove_threshold if self.bg_remove else 0.2,
            bg_remove_output=self.bg_remove_output if self.bg_remove else "",
            w=self.w, h=self.h,
            dpr=self.dpr if self.w or self.h else 1.0,
            fit=self.fit if sized else "clip",
            crop=crop,
            fp_x=self.fp_x if focal else 0.5, fp_y=self.fp_y if focal else 0.5, fp_z=self.fp_z if focal else 1.0,
            max_w=self.max_w if bounded else None, max_h=self.max_h if bounded else None,
            min_w=self.min_w if bounded and (self.min_w or 0) > 1 else None,
            min_h=self.min_h if bounded and (self.min_h or 0) > 1 else None,
            # With both w and h the box is given; ar only sets the missing side. As a ratio, so 16:9 is 32:18.
            ar=(self.ar[0] / self.ar[1], 1.0) if self.ar and sized and not (self.w and self.h) else None,
            rect=tuple(_zero_offset(d) for d in self.rect[:2]) + self.rect[2:] if self.rect else None,
            fill=fill_style,
            fill_color=None if fill_color == TRANSPARENT_WHITE else fill_color,
            bg=self.bg if self.bg and self.bg[3] > 0 else None,  # Over a transparent colour: unchanged.
            pad=self.pad,
            **self._trim_effective(),
        )
        # "" is the origin's own format (unknown here); a cutout's default is PNG.
        final = fmt or ("png" if self.bg_remove and not self.auto_compress else "")
        values["lossless"] = self.lossless and (final == "webp" or (final == "" and not self.auto_compress))
        if final == "" or final in LOSSY_FORMATS or (final == "webp" and not values["lossless"]):
            values["q"] = quality_for(self)  # q, else the default it stands for (75, or 45 with auto=compress).
        if not fmt and self.auto_compress:
            # auto=compress picks the format by transparency, PNG8 rather than PNG with auto=format.
            values["auto"] = frozenset({"compress", "format"} & self.auto)
        if self.mark:
            values.update(self._mark_effective())
        return RenderParams(**values)

    def _trim_effective(self) -> dict:
        by_alpha = self.trim in ("alpha", "colorunlessalpha")
        by_color = self.trim in ("color", "colorunlessalpha")
        auto = self.trim == "auto"
        return dict(
            trim=self.trim,
            trim_alpha=self.trim_alpha if by_alpha else 0,
            trim_color=self.trim_color if by_color else None,
            trim_tol=self.trim_tol if by_color else 0.0,
            trim_md=self.trim_md if auto else TRIM_MD,
            trim_sd=self.trim_sd if auto else TRIM_SD,
            trim_pad=self.trim_pad if self.trim else 0,
        )

    def _mark_effective(self) -> dict:
        sized = bool(self.mark_w or self.mark_h)
        horizontal = next((a for a in self.mark_align if a in HORIZONTAL_ALIGNS), "right")
        vertical = next((a for a in self.mark_align if a in VERTICAL_ALIGNS), "bottom")
        if self.mark_x is not None:
            horizontal = "right"  # An explicit position wins over the alignment.
        if self.mark_y is not None:
            vertical = "bottom"
        padded = self.mark_tile == "grid" or (self.mark_x is None and horizontal != "center") or (
            self.mark_y is None and vertical != "middle")
        mark = self.mark
        if "://" not in mark:
            # A path on the source, as it is fetched; with a query, a rendering of it, whose
            # parameters are part of what the composite means (in any order).
            path, _, query = mark.lstrip("/").partition("?")
            nested = mark_query_canonical(query)
            mark = f"{path}?{nested}" if nested else path
        return dict(
            mark=mark, mark_align=(vertical, horizontal), mark_alpha=self.mark_alpha,
            mark_pad=self.mark_pad if padded else 5,
            mark_scale=None if sized else self.mark_scale,
            mark_w=self.mark_w, mark_h=self.mark_h, mark_x=self.mark_x, mark_y=self.mark_y,
            mark_fit=self.mark_fit if sized else "clip", mark_tile=self.mark_tile, mark_rot=self.mark_rot,
        )

    def canonical(self, fmt: str | None = None) -> str:
        """The same string for two URLs that do the same thing: the render cache key's core.
        `fmt` is the negotiated output format; without it, the URL's own (no Accept header)."""
        if fmt is None:
            fmt = "json" if self.fm == "json" else ("" if self.auto_compress else self.fm)
        memo_key = (fmt, settings.RENDER_DEFAULT_QUALITY)
        # Memoised per instance (instances are immutable and shared by `params_parse`).
        memo = self.__dict__.setdefault("_canonical", {})
        cached = memo.get(memo_key)
        if cached is None:
            effective = self.effective(fmt)
            values = [("fmt", fmt)] + [(name, getattr(effective, name)) for name in _CANONICAL_FIELDS]
            values.append(("auto", sorted(effective.auto)))
            cached = memo[memo_key] = "&".join(f"{k}={v!r}" for k, v in values)
        return cached


# What the image looks like depends on these; access (expires), the 202-or-fallback choice and
# the model (keyed separately) do not, and `fm` is the negotiated format, keyed on its own.
_CANONICAL_FIELDS = sorted(
    f.name for f in fields(RenderParams)
    if f.name not in ("expires", "bg_remove_fallback", "bg_remove_model", "bg_remove_fg_type",
                      "bg_remove_semi_transparency", "auto", "fm")
)
LOSSY_FORMATS = {"jpg", "pjpg", "avif"}
BG_REMOVE_FG_TYPES = {"auto", "car"}
BG_REMOVE_OUTPUTS = {"mask"}  # And webp unless lossless.


def _crop_effective(crop: tuple) -> tuple:
    """The crop anchor as operations/resize.py reads it: the first smart crop alone, else one
    horizontal and one vertical side (centre, the default, left out)."""
    smart = next((c for c in crop if c in SMART_CROPS), None)
    if smart:
        return (smart,)
    horizontal = "left" if "left" in crop else ("right" if "right" in crop else None)
    vertical = "top" if "top" in crop else ("bottom" if "bottom" in crop else None)
    return tuple(side for side in (horizontal, vertical) if side)


def _zero_offset(value: Dim) -> Dim:
    return Dim(0) if value.value == 0 else value


def _decode64(name: str, value: str) -> str:
    """Strict base64url: only its alphabet (Python's decoder would skip anything else), a length
    that can end a quantum, and zero bits after the last byte (RFC 4648 §3.5), so each text has
    exactly one spelling; then UTF-8. Anything else would be read as some other value."""
    try:
        if any(ch in value for ch in "+/="):
            raise ValueError
        padded = value + "=" * (-len(value) % 4)
        data = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        if base64.urlsafe_b64encode(data).decode("ascii") != padded:
            raise ValueError  # Non-zero bits after the last byte.
        return data.decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        raise ParamError(f"The value of {name}64 is not valid base64url (RFC 4648 §5, no padding).") from None


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Splits the raw query; values are percent-decoded before any comma list is split."""
    pairs = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = unquote_plus(name).lower(), unquote_plus(value)
        if name.endswith("64") and name != "auto64":
            name, value = name[:-2], _decode64(name[:-2], value)
        pairs.append((ALIASES.get(name, name), value))
    return pairs


# --- One parser per kind of value ----------------------------------------------------------------

def _bool(value: str, default: bool) -> bool:
    value = value.strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    return default


def _number(value: str) -> float | None:
    try:
        number = float(value.strip())
    except (ValueError, AttributeError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _int(value: str, low: int, high: int) -> int | None:
    number = _number(value)
    return None if number is None else min(max(round(number), low), high)


def _float(value: str, low: float, high: float) -> float | None:
    number = _number(value)
    return None if number is None else min(max(number, low), high)


def _dim(value: str, low: int = 2, high: int = MAX_DIMENSION) -> Dim | None:
    """Pixels (clamped to low–high) or a ratio: a value ≤ 1 (so `w=1` is the whole source)."""
    number = _number(value)
    if number is None or number <= 0:
        return None
    if number <= 1:
        return Dim(number, ratio=True)
    return Dim(min(max(round(number), low), high))


def _choice(value: str, choices: set, default: str) -> str:
    value = value.strip().lower()
    return value if value in choices else default


def _list(value: str, choices: set) -> tuple:
    items = [v.strip().lower() for v in value.split(",")]
    return tuple(dict.fromkeys(v for v in items if v in choices))


def _pad(values: dict) -> tuple:
    """pad for every side, pad-left|top|right|bottom for one (they win over pad)."""
    every = _int(values.get("pad", ""), 0, MAX_DIMENSION) or 0
    sides = (_int(values[f"pad-{side}"], 0, MAX_DIMENSION) if f"pad-{side}" in values else None
             for side in PAD_SIDES)
    return tuple(every if side is None else side for side in sides)


def _fm(value: str) -> str:
    value = value.strip().lower()
    value = FORMAT_ALIASES.get(value, value)
    return value if value in FORMATS else ""


def _ar(value: str) -> tuple | None:
    width, sep, height = value.partition(":")
    w, h = _number(width), _number(height)
    if not sep or not w or not h or w <= 0 or h <= 0:
        return None
    return (w, h)


def _rect(value: str) -> tuple:
    """x,y,w,h: integers are pixels, decimals up to 1 are ratios of the source. Bad syntax is 400."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 4:
        raise ParamError("rect must be four numbers: x,y,width,height.")
    dims = []
    for part in parts:
        number = _number(part)
        if number is None or number < 0:
            raise ParamError("rect must be four non-negative numbers: x,y,width,height.")
        dims.append(Dim(number, ratio=True) if "." in part and number <= 1 else Dim(round(number)))
    if dims[2].value == 0 or dims[3].value == 0:
        raise ParamError("rect width and height must be greater than zero.")
    return tuple(dims)


def mark_query_canonical(query: str) -> str:
    """What the query of a mark on the source means (its own rendering's parameters), in one
    spelling; "" when it changes nothing (a cache-busting `?v=2`): the mark is then the file."""
    if not query:
        return ""
    canonical = params_parse(query).canonical()
    return "" if canonical == _IDENTITY.canonical() else canonical


@functools.lru_cache(maxsize=4096)
def params_parse(raw_query: str) -> RenderParams:
    """The parameters of a query string. Memoised: a page asks for the same few URLs again and
    again, and the result is immutable. A query that fails to parse raises every time."""
    return _params_parse(raw_query)


def _params_parse(raw_query: str) -> RenderParams:
    values: dict[str, str] = {}
    auto: set[str] = set()
    for name, value in query_pairs(raw_query):
        if name == "auto":
            # The one parameter that combines by repetition (auto=format&auto=compress).
            auto.update(v.strip().lower() for v in value.split(",") if v.strip())
        else:
            values[name] = value  # Last one wins.

    def get(name, parser, default=None, *args):
        if name not in values:
            return default
        parsed = parser(values[name], *args)
        return default if parsed is None else parsed

    fit = _choice(values.get("fit", ""), FITS, "clip")
    if fit == "facearea":
        fit = "crop"  # No face detector: documented fallback to a centred crop.
    crop_active = fit == "crop"
    fill_active = fit in ("fill", "fillmax")
    return RenderParams(
        bg_remove=_bool(values.get("bg-remove", ""), False),
        bg_remove_model=values.get("bg-remove-model", "").strip().lower(),
        bg_remove_fallback=_bool(values.get("bg-remove-fallback", ""), False),
        bg_remove_threshold=get("bg-remove-transparency-threshold", _float, 0.2, 0.0, 1.0),
        bg_remove_fg_type=_choice(values.get("bg-remove-fg-type", ""), BG_REMOVE_FG_TYPES, "auto"),
        bg_remove_semi_transparency=_bool(values.get("bg-remove-semi-transparency", ""), True),
        bg_remove_output=_choice(values.get("bg-remove-output", ""), BG_REMOVE_OUTPUTS, ""),
        w=get("w", _dim),
        h=get("h", _dim),
        dpr=get("dpr", _float, 1.0, 0.01, 5.0),
        fit=fit,
        crop=_list(values.get("crop", ""), CROPS) if crop_active else (),
        fp_x=get("fp-x", _float, 0.5, 0.0, 1.0),
        fp_y=get("fp-y", _float, 0.5, 0.0, 1.0),
        fp_z=get("fp-z", _float, 1.0, 1.0, 100.0),
        max_w=get("max-w", _int, None, 1, MAX_DIMENSION) if crop_active else None,
        max_h=get("max-h", _int, None, 1, MAX_DIMENSION) if crop_active else None,
        min_w=get("min-w", _int, None, 1, MAX_DIMENSION) if crop_active else None,
        min_h=get("min-h", _int, None, 1, MAX_DIMENSION) if crop_active else None,
        ar=get("ar", _ar) if crop_active or fill_active else None,
        rect=_rect(values["rect"]) if "rect" in values else None,
        fill=_choice(values.get("fill", ""), FILLS, "") if fill_active else "",
        fill_color=get("fill-color", color_parse) if fill_active else None,
        bg=get("bg", color_parse),
        trim=_choice(values.get("trim", ""), TRIMS, ""),
        trim_alpha=get("trim-alpha", _int, 0, 0, 255),
        trim_color=get("trim-color", color_parse),
        trim_tol=get("trim-tol", _float, 0.0, 0.0, 255.0),
        trim_md=get("trim-md", _float, TRIM_MD, 0.0, 255.0),
        trim_sd=get("trim-sd", _float, TRIM_SD, 0.0, 255.0),
        trim_pad=get("trim-pad", _int, 0, -MAX_DIMENSION, MAX_DIMENSION),
        pad=_pad(values),
        fm=_fm(values.get("fm", "")),
        q=get("q", _int, None, 0, 100),
        lossless=_bool(values.get("lossless", ""), False),
        auto=frozenset(auto),
        mark=values.get("mark", "").strip(),
        mark_align=_list(values.get("mark-align", ""), ALIGNS) or ("bottom", "right"),
        mark_alpha=get("mark-alpha", _int, 100, 0, 100),
        mark_pad=get("mark-pad", _int, 5, 0, MAX_DIMENSION),
        mark_scale=get("mark-scale", _int, None, 0, 100),
        mark_w=get("mark-w", _dim),
        mark_h=get("mark-h", _dim),
        mark_x=get("mark-x", _int, None, -MAX_DIMENSION, MAX_DIMENSION),
        mark_y=get("mark-y", _int, None, -MAX_DIMENSION, MAX_DIMENSION),
        mark_fit=_choice(values.get("mark-fit", ""), MARK_FITS, "clip"),
        mark_tile=_choice(values.get("mark-tile", ""), {"grid"}, ""),
        mark_rot=get("mark-rot", _float, 0.0, 0.0, 359.0),
        expires=get("expires", _int, None, 0, 2**53),
    )


_IDENTITY = RenderParams()
