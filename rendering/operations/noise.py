"""noise: imgix's noise reduction, nr (the threshold) and nrs (the sharpening above it)."""

from __future__ import annotations

from PIL import Image, ImageChops

from rendering.operations.adjust import colour_strips
from rendering.operations.sharpen import blur_small, premultiplied, unsharp
from rendering.stage import Param, Stage, StageContext
from rendering.values import integer

DEFAULT = 20
# nr=100 treats a difference of up to 25 levels (of 255) from the neighbourhood as noise;
# the default 20 is 5 levels, about the grain of a well-exposed JPEG.
THRESHOLD_PER_STEP = 0.25
# nrs=100 adds twice the difference from the neighbourhood to an edge; the default 20, 0.4.
SHARPEN_PER_STEP = 0.02
# The local blur: a 3×3 Gaussian (σ 1), the neighbourhood the threshold compares with.
NEIGHBOURHOOD = 1.0


def noise_values(p) -> tuple[int, int]:
    return (DEFAULT if p.nr is None else p.nr, DEFAULT if p.nrs is None else p.nrs)


def noise_mask(colour: Image.Image, blurred: Image.Image, threshold: float) -> Image.Image:
    """255 where the pixel is noise (its difference from the neighbourhood below the threshold),
    0 where it is an edge, a linear ramp over the last third below the threshold. The difference
    is the luminance-weighted (¼ R, ½ G, ¼ B) sum of each channel's, three cheap passes on one
    band, where converting premultiplied colour to L would unpremultiply it first."""
    difference = ImageChops.difference(colour, blurred)
    if len(difference.getbands()) >= 3:
        red, green, blue = (difference.getchannel(i) for i in range(3))
        difference = ImageChops.add(ImageChops.add(red, blue, scale=2), green, scale=2)
    elif difference.mode != "L":
        difference = difference.getchannel(0)
    start = threshold * 2 / 3
    table = [255 if d <= start else 0 if d >= threshold else round(255 * (threshold - d) / (threshold - start))
             for d in range(256)]
    return difference.point(table)


def noise_apply(colour: Image.Image, threshold: float, sharpen: float) -> Image.Image:
    blurred = blur_small(colour, NEIGHBOURHOOD)
    if premultiplied(colour):
        threshold /= 2  # colour_strips halves premultiplied strips.
    mask = noise_mask(colour, blurred, threshold)
    edges = unsharp(colour, blurred, sharpen) if sharpen else colour
    edges.paste(blurred, None, mask)  # In place: the strip is colour_strips' own copy.
    return edges


class NoiseStage(Stage):
    """A pixel whose luminance differs from its neighbourhood's by less than the threshold is
    noise and takes the local blur; one that differs by more is an edge and is sharpened by nrs
    (a negative nrs softens it). The switch between the two is a short ramp, so a texture near
    the threshold does not break into blotches. Neither set: nothing. One set: the other is 20."""

    name = "noise"
    params = (
        Param("nr", integer(-100, 100), None),
        Param("nrs", integer(-100, 100), None),
    )

    def active(self, p) -> bool:
        if p.nr is None and p.nrs is None:
            return False
        nr, nrs = noise_values(p)
        return nr > 0 or nrs != 0

    def effective(self, p, fmt: str) -> dict:
        """nr=20 and nrs=20 draw the same image as either alone (the other defaults to 20)."""
        if not self.active(p):
            return {"nr": None, "nrs": None}
        nr, nrs = noise_values(p)
        return {"nr": nr, "nrs": nrs}

    def apply(self, image: Image.Image, p, context: StageContext) -> Image.Image:
        if not self.active(p):
            return image
        nr, nrs = noise_values(p)
        threshold = max(0.0, THRESHOLD_PER_STEP * nr)
        return colour_strips(image, lambda colour, top: noise_apply(colour, threshold, SHARPEN_PER_STEP * nrs),
                             1, premultiply=True)


STAGE = NoiseStage()
