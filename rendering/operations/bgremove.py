"""bg-remove and its family: the request's choice of image (the cutout, made by a job; see
services.py), and the one pixel step of its own, the matte when bg-remove-output=mask."""

from PIL import Image

from core.model_files import MODELS, model_provisioned, models_provisioned
from rendering.stage import Param, Stage
from rendering.values import ParamError, boolean, choice, decimal

BG_REMOVE_FG_TYPES = {"auto", "car"}
BG_REMOVE_OUTPUTS = {"mask"}


class ModelUnavailableError(ParamError):
    code = "bg_remove_model_unavailable"


def model_name(value: str) -> str:
    """A model provisioned here, or a 400 naming it and those that are: never another model in its
    place (the cutout's response names the model that made it, X-Bg-Remove-Model)."""
    name = value.strip().lower()
    if name and not model_provisioned(name):
        known = "is not provisioned on this platform" if name in MODELS else "is not a model this platform knows"
        raise ModelUnavailableError(f"bg-remove-model={name} {known}; the provisioned models are: "
                         f"{', '.join(models_provisioned()) or 'none'}.")
    return name


class BgRemoveStage(Stage):
    name = "bg-remove"
    params = (
        Param("bg-remove", boolean, False, aliases=("background-remove",)),
        # The model and the fallback choice are keyed on their own (the render key's model; a
        # fallback is the render without removal, under its own key).
        Param("bg-remove-model", model_name, "", keyed=False),
        Param("bg-remove-fallback", boolean, False, keyed=False,
              differs="default false: a 202 with Retry-After while the cutout is made (imgix: true)"),
        # An origin more transparent than this share of its pixels is served as it is, without a job.
        Param("bg-remove-transparency-threshold", decimal(0.0, 1.0), 0.2, field="bg_remove_threshold"),
        # imgix's foreground hint: `auto` is what the models do; `car` is refused
        # (rendering/operations/unsupported.py): no model here is made for cars.
        Param("bg-remove-fg-type", choice(BG_REMOVE_FG_TYPES), "auto", keyed=False,
              differs="`auto` only; `car` is a 400 (no model here takes a foreground hint)"),
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


class HardEdgesStage(Stage):
    """bg-remove-semi-transparency=false: no pixel of the cutout partly transparent, once it has its
    size and turn (a resize or a rotation after the cut would make soft edges again). What later
    stages draw (a blur, rounded corners, a mask shape) has its own edges."""

    name = "bg-remove-semi-transparency"
    params = (
        # false: every pixel of the cutout fully opaque or fully transparent (alpha at 50 %).
        Param("bg-remove-semi-transparency", boolean, True),
    )

    def active(self, p):
        return bool(p.bg_remove and not p.bg_remove_semi_transparency)

    def apply(self, image, p, context):
        if not self.active(p):
            return image
        if image.mode == "L":  # The matte (bg-remove-output=mask): white where the subject is kept.
            return image.point([0] * 128 + [255] * 128)
        if "A" not in image.getbands():
            return image
        # Each pixel kept whole or removed whole, at half opacity.
        image = image.copy()
        image.putalpha(image.getchannel("A").point([0] * 128 + [255] * 128))
        return image


STAGE = BgRemoveStage()
HARD_EDGES = HardEdgesStage()
