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
        # imgix's foreground hints: accepted; rembg's models have no use for them (docs/rendering.md).
        Param("bg-remove-fg-type", choice(BG_REMOVE_FG_TYPES), "auto", keyed=False,
              differs="accepted; rembg's models take no foreground hint, so it changes nothing"),
        Param("bg-remove-semi-transparency", boolean, True, keyed=False,
              differs="accepted; the cutout keeps the model's semi-transparent edges either way"),
        # "mask": the greyscale alpha matte instead of the cutout (remove.bg's channels=alpha).
        Param("bg-remove-output", choice(BG_REMOVE_OUTPUTS), ""),
    )

    def active(self, p):
        # The pixel step: the matte. The cutout itself is the stages' input (services.py).
        return bool(p.bg_remove and p.bg_remove_output == "mask")

    def effective(self, p, fmt):
        return dict(
            bg_remove=p.bg_remove,
            bg_remove_threshold=p.bg_remove_threshold if p.bg_remove else 0.2,
            bg_remove_output=p.bg_remove_output if p.bg_remove else "",
        )

    def apply(self, image, p, context):
        if not self.active(p):
            return image
        # The cutout's alpha as a greyscale image (white: the subject).
        return image.getchannel("A") if "A" in image.getbands() else Image.new("L", image.size, 255)


STAGE = BgRemoveStage()
