"""sharpen: imgix's sharp (a fixed fine sharpening) and usm/usmrad (an unsharp mask of any radius)."""

from __future__ import annotations

import math

from PIL import Image, ImageFilter

from rendering.operations.adjust import HALF, STRIP_ROWS, colour_strips, premultiplied_strips
from rendering.stage import Param, Stage, StageContext
from rendering.values import decimal, integer

# A blur wider than this runs on a reduced copy; up to it, a 3×3 convolution at full size.
KERNEL_BLUR_RADIUS = 1.0
# sharp=100 adds twice the difference between a pixel and its 3×3 Gaussian neighbourhood.
SHARP_MAX_AMOUNT = 2.0
# usm=±100 adds (or takes away) 1.5 times the difference from the blurred image.
USM_MAX_AMOUNT = 1.5
USMRAD_DEFAULT = 2.5


def gaussian_kernel3(sigma: float) -> list[float]:
    """A 3×3 Gaussian: as Pillow's GaussianBlur for radii up to 1, in half its time."""
    edge = math.exp(-1 / (2 * sigma * sigma)) if sigma > 0 else 0.0
    row = (edge, 1.0, edge)
    weights = [a * b for a in row for b in row]
    total = sum(weights)
    return [w / total for w in weights]


def premultiplied(colour: Image.Image) -> bool:
    """Whether a strip is premultiplied colour and alpha (colour_strips' RGBa or La, halved)."""
    return colour.mode in ("RGBa", "La")


def blur_small(image: Image.Image, radius: float) -> Image.Image:
    """A Gaussian blur of standard deviation `radius` ≤ KERNEL_BLUR_RADIUS (1 row of context).
    Pillow's 3×3 filters leave the image's outermost pixels as they were."""
    return image.filter(ImageFilter.Kernel((3, 3), gaussian_kernel3(radius), scale=1))


class ReducedBlur:
    """A wide Gaussian blur of the whole image, made once on a copy reduced by a power of two
    and cut back to full size strip by strip; from premultiplied_strips' strips when the image
    has alpha, and then halved, as colour_strips halves the strips."""

    def __init__(self, image: Image.Image, radius: float, strips: list[Image.Image] | None = None):
        width, height = image.size
        # Capped at the image's longer side: wider than that, a blur is the mean anyway.
        radius = min(radius, max(width, height))
        # A power of two (STRIP_ROWS is a multiple of it), no larger than the image.
        steps = min(max(1, int(math.log2(radius))), int(math.log2(min(width, height))), int(math.log2(STRIP_ROWS)))
        self.factor = f = 2 ** steps
        if strips is None:
            reduced = image.reduce(f)
        else:
            reduced = Image.new(strips[0].mode, (-(-width // f), -(-height // f)))
            for k, strip in enumerate(strips):
                reduced.paste(strip.reduce(f), (0, k * STRIP_ROWS // f))
        # Reducing by f (a box) and scaling back up (bilinear) blur by about f/2 already.
        reduced_radius = math.sqrt(max(radius * radius - f * f / 4, 0.25)) / f
        self.blurred = reduced.filter(ImageFilter.GaussianBlur(reduced_radius))
        if strips is not None:  # Halved, as colour_strips halves the strips.
            self.blurred = self.blurred.point(HALF * len(self.blurred.mode))
        self.width = width

    def part(self, top: int, size: tuple[int, int]) -> Image.Image:
        f = self.factor
        box = (0, top / f, self.width / f, (top + size[1]) / f)
        return self.blurred.resize(size, Image.Resampling.BILINEAR, box=box)


def unsharp(image: Image.Image, blurred: Image.Image, amount: float) -> Image.Image:
    """image + amount × (image − blurred), clipped; a negative amount softens towards the blur."""
    return Image.blend(blurred, image, 1 + amount)


def sharpen_kernel(sharp: float, usm: float = 0.0, radius: float = 0.0) -> list[float]:
    """identity + s × (identity − 3×3 Gaussian of σ 0.85) for sharp, plus u × (identity − 3×3
    Gaussian of σ radius) for an unsharp mask of a radius up to a pixel: both in one 3×3 pass
    (their sum; applied one after the other they would differ by the product of two small terms)."""
    amount = SHARP_MAX_AMOUNT * sharp / 100
    identity = [0.0] * 4 + [1.0] + [0.0] * 4
    kernel = [(1 + amount) * i - amount * g for i, g in zip(identity, gaussian_kernel3(0.85))]
    if usm:
        kernel = [k + usm * (i - g) for k, i, g in zip(kernel, identity, gaussian_kernel3(radius))]
    return kernel


def sharp_apply(image: Image.Image, sharp: float, usm: float = 0.0, radius: float = 0.0,
                half: bool = False) -> Image.Image:
    """One 3×3 convolution (sharpen_kernel); with `half`, its result halved in the same pass (see
    colour_strips). Pillow's 3×3 filters copy the image's outermost pixels: those are halved apart."""
    out = image.filter(ImageFilter.Kernel((3, 3), sharpen_kernel(sharp, usm, radius), scale=2 if half else 1))
    if half:
        width, height = out.size
        for box in ((0, 0, width, 1), (0, height - 1, width, height), (0, 0, 1, height), (width - 1, 0, width, height)):
            out.paste(image.crop(box).point(HALF * len(image.mode)), box[:2])
    return out


def usm_radius(p) -> float:
    """usmrad is in CSS pixels, as imgix's other lengths: dpr multiplies it as it multiplies w
    and h (and, like it, only when there is a w or h; rendering/operations/pad.py's pad_sides)."""
    return p.usmrad * (p.dpr if p.w or p.h else 1.0)


class SharpenStage(Stage):
    """Filters that read neighbours run on premultiplied colour, so the hidden colour of
    transparent pixels cannot bleed into a cutout's visible edge, normalised by the alpha filtered
    with it, so the silhouette itself is not sharpened; alpha is left as it was. They run in
    strips of rows (rendering/operations/adjust.py's colour_strips), so memory stays a strip's.
    The cost is bounded whatever the radius: a blur wider than a pixel runs once on a copy
    reduced by a power of two and each strip takes its part of it scaled back up (Pillow's
    Gaussian blur costs the same for any radius, about 1.5 CPU-s on 50 MP; on the reduced copy a
    fraction of that); one of a pixel or less is a 3×3 convolution, with sharp's in the same pass."""

    name = "sharpen"
    params = (
        Param("sharp", decimal(0, 100), 0),
        Param("usm", integer(-100, 100), 0),
        Param("usmrad", decimal(0, 500), USMRAD_DEFAULT),
    )

    def active(self, p) -> bool:
        return bool(p.sharp or (p.usm and p.usmrad))

    def effective(self, p, fmt: str) -> dict:
        """usmrad draws nothing without usm, and usm nothing with a zero radius."""
        if not (p.usm and p.usmrad):
            return {"sharp": p.sharp, "usm": 0, "usmrad": USMRAD_DEFAULT}
        return {"sharp": p.sharp, "usm": p.usm, "usmrad": p.usmrad}

    def apply(self, image: Image.Image, p, context: StageContext) -> Image.Image:
        if not self.active(p):
            return image
        usm = USM_MAX_AMOUNT * p.usm / 100 if p.usmrad else 0.0
        radius = usm_radius(p)
        reduced = strips = None
        if usm and radius > KERNEL_BLUR_RADIUS:
            # The wide blur and the strips read the same premultiplied colour: made once.
            strips = premultiplied_strips(image) if image.mode in ("RGBA", "LA") else None
            reduced = ReducedBlur(image, radius, strips)

        def work(colour: Image.Image, top: int) -> Image.Image:
            half = premultiplied(colour)  # colour_strips leaves the halving to the filters here.
            if reduced:
                if p.sharp:
                    colour = sharp_apply(colour, p.sharp, half=half)
                elif half:
                    colour = colour.point(HALF * len(colour.mode))
                return unsharp(colour, reduced.part(top, colour.size), usm)
            # A radius of a pixel or less and sharp: one 3×3 convolution does both.
            return sharp_apply(colour, p.sharp, usm, radius, half=half)

        return colour_strips(image, work, 1, premultiply=True, premultiplied=strips, halve=False)

STAGE = SharpenStage()
