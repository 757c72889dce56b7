"""bg-remove and its family: the request's choice of image (the cutout, made by a job; see
services.py), and the one pixel step of its own, the matte when bg-remove-output=mask."""

from PIL import Image

from rendering.stage import Param, Stage
from rendering.values import boolean, choice, decimal

BG_REMOVE_FG_TYPES = {"auto", "car"}
BG_REMOVE_OUTPUTS = {"mask"}


class BgRemoveStage(Stage):
    name = "bg-remove"
    params = (
        Param("bg-remove", boolean, False, aliases=("background-remove",)),
        # The model and the fallback choice are keyed on their own (the render key's model; a
        # fallback is the render without removal, under its own key).
        Param("bg-remove-model", lambda v: v.strip().lower(), "", keyed=False),
        Param("bg-remove-fallback", boolean, False, keyed=False,
              differs="default false: a 202 with Retry-After while the cutout is made (imgix: true)"),
        # An origin more transparent than this share of its pixels is served as it is, without a job.
        Param("bg-remove-transparency-threshold", decimal(0.0, 1.0), 0.2, field="bg_remove_threshold"),
        # imgix's foreground hint: `auto` is what the models do; `car` is refused
        # (rendering/operations/unsupported.py): no model here is made for cars.
        Param("bg-remove-fg-type", choice(BG_REMOVE_FG_TYPES), "auto", keyed=False,
              differs="`auto` only; `car` is a 400 (no model here takes a foreground hint)"),
        # false: every pixel of the cutout fully opaque or fully transparent (alpha at 50 %).
        Param("bg-remove-semi-transparency", boolean, True),
        # "mask": the greyscale alpha matte instead of the cutout (remove.bg's channels=alpha).
        Param("bg-remove-output", choice(BG_REMOVE_OUTPUTS), ""),
    )

    def active(self, p):
        # The pixel steps: hard edges, the matte. The cutout itself is the stages' input (services.py).
        return bool(p.bg_remove and (p.bg_remove_output == "mask" or not p.bg_remove_semi_transparency))

    def effective(self, p, fmt):
        return dict(
            bg_remove=p.bg_remove,
            bg_remove_threshold=p.bg_remove_threshold if p.bg_remove else 0.2,
            bg_remove_output=p.bg_remove_output if p.bg_remove else "",
            bg_remove_semi_transparency=p.bg_remove_semi_transparency if p.bg_remove else True,
        )

    def apply(self, image, p, context):
        if not self.active(p):
            return image
        if not p.bg_remove_semi_transparency and "A" in image.getbands():
            # No partial transparency: each pixel kept whole or removed whole, at half opacity.
            image = image.copy()
            image.putalpha(image.getchannel("A").point([0] * 128 + [255] * 128))
        if p.bg_remove_output != "mask":
            return image
        # The cutout's alpha as a greyscale image (white: the subject).
        return image.getchannel("A") if "A" in image.getbands() else Image.new("L", image.size, 255)


STAGE = BgRemoveStage()
