"""imgix colours: CSS keywords, or hex of 3 (RGB), 4 (ARGB), 6 (RRGGBB) or 8 (AARRGGBB) digits."""

import re

from PIL import ImageColor

_HEX = re.compile(r"^[0-9a-f]+$")


def color_parse(value: str) -> tuple[int, int, int, int] | None:
    """RGBA, or None for a value that is not a colour. Alpha comes FIRST in imgix's hex forms."""
    value = value.strip().lower().lstrip("#")
    if value == "transparent":
        return (0, 0, 0, 0)
    if value in ImageColor.colormap:
        r, g, b = ImageColor.getrgb(value)[:3]
        return (r, g, b, 255)
    if not _HEX.match(value) or len(value) not in (3, 4, 6, 8):
        return None
    if len(value) in (3, 4):
        value = "".join(ch * 2 for ch in value)
    if len(value) == 6:
        value = "ff" + value
    a, r, g, b = (int(value[i:i + 2], 16) for i in range(0, 8, 2))
    return (r, g, b, a)
