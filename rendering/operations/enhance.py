"""auto=enhance: brightness, contrast and saturation set from the image itself (imgix's
"adjusts brightness, contrast, and saturation automatically based on image content").

Ours, where imgix publishes no formula: the luminance's 0.5th and 99.5th percentiles (measured on
a thumbnail) are stretched to black and white with one gain for all three channels, so hues are
kept and no channel is clipped more than the brightest 0.5 % of pixels; the gain is at most 2 (a
nearly flat image is not blown up into noise), and then the middle of the two goes to mid-grey;
then saturation rises by 10 %. An image that already spans the range is left almost as it is."""

import numpy as np
from PIL import Image, ImageEnhance

from rendering.stage import Stage

MEASURE_SIZE = 256
LOW, HIGH = 0.5, 99.5  # Percentiles of luminance mapped to 0 and 255.
MAX_GAIN = 2.0
SATURATION = 1.1


def enhance_levels(image: Image.Image) -> tuple[float, float]:
    """(middle, gain) of the luminance stretch, measured on a thumbnail: a value v becomes
    (v - middle) × gain + 127.5."""
    thumb = image.convert("RGB")
    thumb.thumbnail((MEASURE_SIZE, MEASURE_SIZE), Image.Resampling.BOX)
    grey = np.asarray(thumb.convert("L"), dtype=np.float32)
    if image.mode in ("RGBA", "LA"):
        alpha = image.getchannel("A").resize(thumb.size, Image.Resampling.BOX)
        visible = np.asarray(alpha) > 0
        grey = grey[visible] if visible.any() else grey.ravel()
    low, high = np.percentile(grey, [LOW, HIGH])
    gain = min(MAX_GAIN, 255.0 / max(high - low, 1.0))
    return float(low + high) / 2, float(gain)


class EnhanceStage(Stage):
    """Reads `auto` (the output stage's field) for `enhance`; no parameter of its own."""

    name = "enhance"

    def active(self, p) -> bool:
        return "enhance" in p.auto

    def apply(self, image, p, context):
        if not self.active(p):
            return image
        middle, gain = enhance_levels(image)
        table = [min(255, max(0, round((v - middle) * gain + 127.5))) for v in range(256)]
        mode = image.mode
        if mode in ("RGBA", "LA"):
            alpha = image.getchannel("A")
            rgb = image.convert("RGB").point(table * 3)
            rgb = ImageEnhance.Color(rgb).enhance(SATURATION)
            out = rgb.convert("RGBA")
            out.putalpha(alpha)
            return out if mode == "RGBA" else out.convert("LA")
        if mode == "L":
            return image.point(table)
        rgb = image.convert("RGB").point(table * 3)
        return ImageEnhance.Color(rgb).enhance(SATURATION)


STAGE = EnhanceStage()
