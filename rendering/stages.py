"""The list of stages, in the order a render runs them, and everything derived from it: the
parameters a URL may carry (names and aliases), RenderParams' fields, the cache key's fields,
the "anything to do?" shortcut, the decode size and the output's size before any pixel work.

Adding an operation: one module in rendering/operations/ with its stage, its place below, its
tests and its line in docs/rendering.md."""

from rendering.operations import (
    adjust,
    animation,
    bg,
    bgremove,
    blend,
    border,
    delivery,
    enhance,
    faces,
    fillgradient,
    fpdebug,
    mark,
    mask,
    noise,
    output,
    pad,
    palette,
    resize,
    rotate,
    shadow,
    sharpen,
    stylize,
    text,
    trim,
    unsupported,
)
from rendering.stage import Box, Stage, StageContext

# Trim first (its size depends on pixels: before the budget) → the matte when it is asked for
# instead of the cutout → orient/flip → rect → fit/crop/resize (w, h, dpr, ar, min/max, fill,
# crop=faces, facearea) → fp-debug → face-blur/face-pixel/redeye → rot → the cutout's hard edges
# (bg-remove-semi-transparency=false) → noise reduction (nr,
# nrs) → auto=enhance → colour adjustments (bri, con, exp, gam, high, shad, hue, sat, vib,
# invert) → sharpening (sharp, usm) → stylize (blur, px, htn, monochrome, sepia, duotone) → pad →
# shadow → border → mask → bg → blend → text → mark → transparency; then the response's own
# choices (the palette instead of the image, frames of an animation, format, quality, access,
# download, client hints), which do no pixel work, and last what is refused.
STAGES: tuple[Stage, ...] = (
    trim.STAGE,
    bgremove.STAGE,
    rotate.ORIENT,
    resize.RECT,
    resize.RESIZE,
    fpdebug.STAGE,  # Right after the crop it shows, before anything moves the focal point.
    faces.STAGE,  # face-blur/face-pixel/redeye: on the sized image, before rot turns the faces.
    rotate.ROT,
    bgremove.HARD_EDGES,  # Once the cutout has its size and turn, which would soften its edges again.
    noise.STAGE,
    enhance.STAGE,
    adjust.STAGE,
    sharpen.STAGE,
    *stylize.STAGES,
    pad.STAGE,
    # After pad, whose transparent margins give the shadow room. Before border and mask, which
    # frame and cut the whole canvas, shadow included: after them, a border's band would be
    # opaque "subject" (casting a shadow of the frame, and moving contact's base to the canvas's
    # bottom edge). Before bg, which fills behind the shadow.
    shadow.STAGE,
    border.STAGE,
    mask.STAGE,
    bg.STAGE,
    blend.STAGE,
    text.STAGE,
    mark.STAGE,
    fillgradient.STAGE,  # transparency=grid: behind whatever is still transparent.
    palette.STAGE,  # The colours of the image as drawn, in place of it.
    animation.STAGE,  # Which frames, how fast, how often: every stage above runs on each frame.
    output.STAGE,
    output.ACCESS,
    delivery.STAGE,
    unsupported.STAGE,  # Last: it reads what the others left (and their parsed values).
)
PIXEL_STAGES = tuple(s for s in STAGES if s.pixels)
EARLY_STAGES = tuple(s for s in PIXEL_STAGES if s.before_budget)
LATE_STAGES = tuple(s for s in PIXEL_STAGES if not s.before_budget)


def _check(stages) -> None:
    """Each URL name (parameter or alias) and each field belongs to one stage; stages whose size
    depends on pixels come first."""
    names, fields = {}, {}
    for stage in stages:
        for param in stage.params:
            for name in (param.name, *param.aliases):
                if names.setdefault(name, stage.name) != stage.name:
                    raise ValueError(f"{name!r} is read by both {names[name]!r} and {stage.name!r}.")
        for field in stage.fields:
            if fields.setdefault(field, stage.name) != stage.name:
                raise ValueError(f"Field {field!r} belongs to both {fields[field]!r} and {stage.name!r}.")
    pixel = [s for s in stages if s.pixels]
    if pixel[:len([s for s in pixel if s.before_budget])] != [s for s in pixel if s.before_budget]:
        raise ValueError("Stages that run before the budget must come first.")


_check(STAGES)

PARAMETERS = frozenset(param.name for stage in STAGES for param in stage.params)
# imgix's aliases, the left name read as the right one: each stage's own, and every alias imgix's
# spec gives a parameter a stage reads.
ALIASES = {alias: param.name for stage in STAGES for param in stage.params for alias in param.aliases}
ALIASES.update((alias, name) for alias, name in unsupported.IMGIX_SPEC["aliases"].items()
               if name in PARAMETERS and alias not in PARAMETERS)
ALIASES.update((alias, name) for name, spec in unsupported.IMGIX_SPEC["parameters"].items() if name in PARAMETERS
               for alias in spec.get("aliases", ()) if alias not in PARAMETERS)
# Every other name of imgix's spec (and its aliases) is refused, by the last stage.
unsupported.STAGE.refused = {
    name: spec_name
    for spec_name, spec in unsupported.IMGIX_SPEC["parameters"].items() if spec_name not in PARAMETERS
    for name in (spec_name, *spec.get("aliases", ()))
} | {alias: name for alias, name in unsupported.IMGIX_SPEC["aliases"].items() if name not in PARAMETERS}
FIELDS = {field: default for stage in STAGES for field, default in stage.fields.items()}
KEYED_FIELDS = tuple(sorted(field for stage in STAGES for field in stage.keyed_fields))


def stages_parse(values: dict[str, str]) -> dict:
    parsed: dict = {}
    for stage in STAGES:
        parsed.update(stage.parse(values, parsed))
    return parsed


def stages_active(params) -> bool:
    """Whether any stage changes the pixels."""
    return any(stage.active(params) for stage in PIXEL_STAGES)


def stages_effective(params, fmt: str) -> dict:
    values: dict = {}
    for stage in STAGES:
        values.update(stage.effective(params, fmt))
    return values


def stages_decode_size(params) -> Box | None:
    """The smallest decoded size the render needs, when it is known before decoding: None when a
    stage that needs the image's own pixels acts."""
    if any(stage.full_decode and stage.active(params) for stage in PIXEL_STAGES):
        return None
    return resize.RESIZE.decode_size(params)


def stages_size(size: Box, params, context: StageContext = StageContext()) -> Box:
    """The output's size for an image of `size` after the early stages (trim), without pixels."""
    for stage in LATE_STAGES:
        size = stage.size(size, params, context)
    return size


def stages_apply(image, params, context: StageContext, stages=LATE_STAGES):
    for stage in stages:
        image = stage.apply(image, params, context)
    return image
