"""remove.bg's request fields: one small parser per option, into one value object.

Unlike rendering URLs (where a bad value is ignored), a bad value here is remove.bg's 400 with
the code its spec names (invalid_size, invalid_crop_margin, …): clients of remove.bg expect it.
"""

import re
from dataclasses import dataclass

from PIL import ImageColor

from removebg_api.errors import RemoveBgError

# Output pixel ceilings by `size` (remove.bg: preview ≈ 0.25 MP, medium 1.5 MP, hd 4 MP, full
# 25 MP, 50MP 50 MP), and its aliases. `auto` is the highest there is. Every one is bounded
# further by the rendering budget and the stored cutout (results.py:_ceiling).
SIZES = {"preview": 250_000, "medium": 1_500_000, "hd": 4_000_000, "full": 25_000_000, "50mp": 50_000_000}
SIZE_ALIASES = {"small": "preview", "regular": "preview", "4k": "full", "auto": "50mp"}
# Credits a result costs by size: a preview a quarter, every larger size one (remove.bg's prices).
PREVIEW_CREDITS, FULL_CREDITS = "0.25", "1"
# remove.bg's foreground types; `graphics` is its older spelling of `graphic` (X-Type's class).
TYPES = {"auto", "person", "product", "car", "animal", "graphic", "transportation"}
TYPE_ALIASES = {"graphics": "graphic"}
# X-Type's classes by type_level (remove.bg's spec: 1 coarse, 2 and latest finer); `graphic` is
# reported as the class `graphics`.
X_TYPES = {"1": {"person", "product", "animal", "car"},
           "2": {"person", "product", "animal", "car", "transportation", "graphics"}}
X_TYPES["latest"] = X_TYPES["2"]
TYPE_LEVELS = {"none", "1", "2", "latest"}
FORMATS = {"auto", "png", "jpg", "webp", "zip"}
FORMAT_ALIASES = {"jpeg": "jpg"}
CHANNELS = {"rgba", "alpha"}
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
MAX_MARGIN_PX = 500  # remove.bg: each side at most 500 px, or half the subject.
_LENGTH = re.compile(r"^(\d+(?:\.\d+)?)(px|%)?$")
_HEX = re.compile(r"^#?([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")


@dataclass(frozen=True)
class Length:
    value: float
    percent: bool = False

    def pixels(self, reference: float) -> float:
        return self.value * reference / 100 if self.percent else self.value


@dataclass(frozen=True)
class Options:
    size: str = "preview"
    type: str = "auto"
    type_level: str = "1"
    format: str = "auto"
    roi: tuple | None = None  # (x1, y1, x2, y2) as Lengths; None: the whole image.
    crop: bool = False
    crop_margin: tuple = ()  # (top, right, bottom, left) Lengths; () for none.
    scale: float | None = None  # 0.1–1 of the canvas; None: the subject's own size.
    position: tuple | None = None  # (x, y) in 0–1; None: where the subject is ("original").
    channels: str = "rgba"
    add_shadow: bool = False
    semitransparency: bool = True
    bg_color: tuple | None = None  # RGBA
    # size=auto: the highest size the account can pay (removebg_api/credits.py:credits_take).
    auto: bool = False

    @property
    def max_pixels(self) -> int:
        return SIZES[self.size]

    @property
    def x_type(self) -> str | None:
        """X-Type: no classifier here, so the type asked for, in the level's classes, else
        "other"; None for type_level=none (no header)."""
        if self.type_level == "none":
            return None
        name = "graphics" if self.type == "graphic" else self.type
        return name if name in X_TYPES[self.type_level] else "other"

    @property
    def credits(self) -> str:
        return size_credits(self.size)


def size_credits(size: str) -> str:
    return PREVIEW_CREDITS if size == "preview" else FULL_CREDITS


def options_parse(fields: dict) -> Options:
    """The options of a request's fields (strings, or JSON's booleans and numbers)."""
    values = {name: _text(value) for name, value in fields.items() if value is not None}
    get = values.get
    return Options(
        size=_size(get("size", "")),
        type=_choice(TYPE_ALIASES.get(get("type", "").strip().lower(), get("type", "")), TYPES, "auto",
                     "invalid_type", "type"),
        type_level=_choice(get("type_level", ""), TYPE_LEVELS, "1", "invalid_type_level", "type_level"),
        format=_format(get("format", "")),
        roi=_roi(get("roi", "")),
        crop=_bool(get("crop", ""), False, "crop"),
        crop_margin=_margin(get("crop_margin", "")),
        scale=_scale(get("scale", "")),
        position=_position(get("position", "")),
        channels=_choice(get("channels", ""), CHANNELS, "rgba", "invalid_channels", "channels"),
        add_shadow=_bool(get("add_shadow", ""), False, "add_shadow"),
        semitransparency=_bool(get("semitransparency", ""), True, "semitransparency"),
        bg_color=_color(get("bg_color", "")),
        auto=get("size", "").strip().lower() == "auto",
    )


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    raise RemoveBgError("invalid_parameters", "Invalid parameters", "Each field is a string, a number or a boolean.")


def _invalid(name: str, code: str | None = None) -> RemoveBgError:
    return RemoveBgError(code or f"invalid_{name}", f"Invalid value for parameter '{name}'")


def _choice(value: str, choices: set, default: str, code: str, name: str) -> str:
    value = value.strip().lower()
    if not value:
        return default
    if value not in choices:
        raise _invalid(name, code)
    return value


def _size(value: str) -> str:
    value = value.strip().lower()
    if not value:
        return "preview"
    value = SIZE_ALIASES.get(value, value)
    if value not in SIZES:
        raise _invalid("size")
    return value


def _format(value: str) -> str:
    value = value.strip().lower()
    value = FORMAT_ALIASES.get(value, value)
    if not value:
        return "auto"
    if value not in FORMATS:
        raise RemoveBgError("invalid_format", "Invalid format parameter given")
    return value


def _bool(value: str, default: bool, name: str) -> bool:
    value = value.strip().lower()
    if not value:
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise RemoveBgError(f"invalid_{name}", f"Invalid {name} parameter given")


def _length(text: str) -> Length | None:
    match = _LENGTH.match(text.strip().lower())
    if not match:
        return None
    return Length(float(match.group(1)), percent=match.group(2) == "%")


def _lengths(value: str, counts: tuple, code: str, title: str) -> tuple | None:
    parts = value.replace(",", " ").split()
    if not parts:
        return None
    lengths = tuple(_length(part) for part in parts)
    if len(parts) not in counts or any(length is None for length in lengths):
        raise RemoveBgError(code, title)
    return lengths


def _margin(value: str) -> tuple:
    """One value (all sides), two (top/bottom, left/right) or four (top, right, bottom, left)."""
    lengths = _lengths(value, (1, 2, 4), "invalid_crop_margin", "Invalid crop_margin parameter given")
    if lengths is None:
        return ()
    if any(length.percent and length.value > 50 for length in lengths):
        raise RemoveBgError("invalid_crop_margin", "Invalid crop_margin parameter given",
                            "A relative margin is at most 50% of the subject.")
    if len(lengths) == 1:
        lengths = lengths * 4
    elif len(lengths) == 2:
        lengths = lengths * 2
    return lengths


def _roi(value: str) -> tuple | None:
    lengths = _lengths(value, (4,), "invalid_roi", "Invalid roi parameter given")
    if lengths is not None and any(length.percent and length.value > 100 for length in lengths):
        raise RemoveBgError("roi_exceeds_bounds", "ROI exceeds image bounds",
                            "The given roi parameter defines a region that exceeds the image bounds")
    return lengths


def _scale(value: str) -> float | None:
    value = value.strip().lower()
    if not value or value == "original":
        return None
    length = _length(value)
    if length is None or not length.percent or not 10 <= length.value <= 100:
        raise RemoveBgError("invalid_scale", "Invalid scale parameter given",
                            'scale is "original" or a percentage from 10% to 100%.')
    return length.value / 100


def _position(value: str) -> tuple | None:
    value = value.strip().lower()
    if not value or value == "original":
        return None
    if value == "center":
        return (0.5, 0.5)
    parts = value.split()
    lengths = [_length(part) for part in parts]
    if len(parts) not in (1, 2) or any(p is None or not p.percent or p.value > 100 for p in lengths):
        raise RemoveBgError("invalid_position", "Invalid position parameter given",
                            'position is "original", "center", or one or two percentages (horizontal, vertical).')
    x = lengths[0].value / 100
    return (x, lengths[-1].value / 100)


def _color(value: str) -> tuple | None:
    """A hex colour (3, 4, 6 or 8 digits; remove.bg puts alpha LAST, as CSS does) or a colour name."""
    value = value.strip()
    if not value:
        return None
    match = _HEX.match(value)
    if match:
        digits = match.group(1)
        if len(digits) in (3, 4):
            digits = "".join(ch * 2 for ch in digits)
        if len(digits) == 6:
            digits += "ff"
        r, g, b, a = (int(digits[i:i + 2], 16) for i in range(0, 8, 2))
        return (r, g, b, a)
    try:
        r, g, b = ImageColor.getrgb(value.lower())[:3]
    except ValueError:
        raise RemoveBgError("invalid_bg_color", "Invalid bg_color parameter given") from None
    return (r, g, b, 255)
