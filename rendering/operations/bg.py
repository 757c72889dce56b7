"""bg: the image composited over a solid colour (imgix hex colours carry alpha first)."""

from PIL import Image

from rendering.stage import Param, Stage
from rendering.values import color


def bg_apply(image: Image.Image, rgba: tuple[int, int, int, int] | None) -> Image.Image:
    """The image "over" `rgba`: RGB when the colour is opaque, else RGBA keeping partial alpha."""
    if rgba is None or rgba[3] == 0 or not image.has_transparency_data:
        return image  # Over a transparent colour, or an opaque image over anything: no change.
    background = Image.new("RGBA", image.size, tuple(rgba))
    result = Image.alpha_composite(background, image.convert("RGBA"))
    return result.convert("RGB") if rgba[3] == 255 else result


class BgStage(Stage):
    name = "bg"
    params = (Param("bg", color),)

    def active(self, p):
        return bool(p.bg and p.bg[3] > 0)  # Over a transparent colour: unchanged.

    def effective(self, p, fmt):
        return {"bg": p.bg if self.active(p) else None}

    def apply(self, image, p, context):
        return bg_apply(image, p.bg) if p.bg else image


STAGE = BgStage()
