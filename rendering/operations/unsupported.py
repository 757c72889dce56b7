"""What this platform does not do, said rather than silently skipped.

Every parameter of imgix's published spec (rendering/imgix/parameters.json) that no stage reads is
refused with a 400 naming it, and so is a value no stage serves (fm=jp2, fill=gen, auto=enhance,
…). Where imgix's contract names a fallback and the URL asks for it (bg-replace-fallback,
fill-gen-fallback, upscale-fallback), the image is served without the operation and the
`X-Render-Fallback` header says what was left out and why. A name that is not imgix's (a
cache-buster, `ixlib`) is ignored, as imgix does."""

import json
from pathlib import Path

from rendering.stage import Param, Stage
from rendering.values import ParamError, boolean

IMGIX_SPEC = json.loads((Path(__file__).resolve().parent.parent / "imgix" / "parameters.json").read_text())

# Why a family of parameters is not served, by the start of its name (the first match wins).
REASONS = (
    (("bg-replace", "fill-gen", "object-removal", "upscale"),
     "needs a generative model, which this platform does not run"),
    (("lp-blur",), "needs a licence-plate detector, which this platform does not run"),
    (("video-",), "is a video parameter; this platform renders images"),
    (("page", "pdf-"), "applies to PDF origins, which this platform does not render"),
    (("svg-sanitize", "rasterize-bypass"), "applies to vector origins (SVG, PDF, EPS, AI), which this platform does "
     "not accept (origins are decoded raster images: docs/rendering.md, Input images)"),
)
DEFAULT_REASON = "is not served by this platform yet (docs/rendering.md lists what is)"

# A family served without its operation when the URL asks for imgix's fallback: (the family's
# parameters' start, the fallback parameter).
FALLBACKS = (("bg-replace", "bg-replace-fallback"), ("fill-gen", "fill-gen-fallback"), ("upscale", "upscale-fallback"))

# Values of served parameters that no stage serves, with why.
VALUES = {
    "fm": {value: "is a format this platform does not write" for value in ("jp2", "jxr", "mp4", "webm", "blurhash",
                                                                         "spritesheet")},
    "fill": {"gen": "needs a generative model, which this platform does not run",
             "generative": "needs a generative model, which this platform does not run"},
    "bg-remove-fg-type": {"car": "is not served: no model here takes a foreground hint (bg-remove-fg-type=auto is "
                                 "what is done)"},
    "cs": {"adobergb1998": "is not served: renders are converted to sRGB at decode and written in sRGB"},
    "iptc": {"allow": "is not served: renders carry no metadata (iptc=block is what is done)"},
    "auto": {"true": "is not a value this platform serves (use format, compress, enhance or redeye)"},
}


def reason_for(name: str) -> str:
    return next((reason for starts, reason in REASONS if name.startswith(starts)), DEFAULT_REASON)


def _fallback_for(name: str) -> str:
    return next((fallback for start, fallback in FALLBACKS if name.startswith(start)), "")


class UnsupportedStage(Stage):
    """Reads every spec parameter no other stage reads (set by rendering/stages.py once the list
    is known): a 400, or with the family's fallback asked for, a note in `fallbacks`."""

    name = "unsupported"
    pixels = False
    params = (
        Param("bg-replace-fallback", boolean, False, keyed=False),
        Param("fill-gen-fallback", boolean, False, aliases=("fill-generative-fallback",), keyed=False),
        Param("upscale-fallback", boolean, False, keyed=False),
        # Why the image is not all the URL asked for (the X-Render-Fallback header); not a field
        # that changes the image, so not in the cache key.
        Param("fallbacks", None, (), keyed=False),
    )
    refused: dict[str, str] = {}  # URL name (parameter or alias) → the spec parameter.

    def parse(self, values, parsed):
        out = super().parse(values, parsed)
        notes = []
        for name in values:
            refused = self.refused.get(name)
            if refused is None or refused in {p.name for p in self.params}:
                continue
            fallback = _fallback_for(refused)
            if fallback and out.get(fallback.replace("-", "_")):
                notes.append(f"{refused} {reason_for(refused)}; served without it ({fallback}=true)")
                continue
            shown = name if name == refused else f"{name} ({refused})"
            hint = f" Add {fallback}=true to serve the image without it." if fallback else ""
            raise UnsupportedParameterError(f"The parameter {shown} {reason_for(refused)}.{hint}")
        for name, refused_values in VALUES.items():
            for value in (v.strip().lower() for v in values.get(name, "").split(",")):
                if value in refused_values:
                    if name == "fill" and out.get("fill_gen_fallback"):
                        notes.append(f"fill={value} {refused_values[value]}; served with fill=solid "
                                     "(fill-gen-fallback=true)")
                        continue
                    raise UnsupportedParameterError(f"{name}={value} {refused_values[value]}.")
        if parsed.get("cs") == "origin":
            notes.append("cs=origin: renders are converted to sRGB at decode; served as cs=srgb, imgix's fallback "
                         "when the origin's colour space cannot be kept")
        if notes:
            out["fallbacks"] = tuple(notes)
        return out

    def effective(self, p, fmt):
        return {}  # Nothing here changes the image; a dropped operation's image is the one without it.


class UnsupportedParameterError(ParamError):
    code = "unsupported_parameter"


STAGE = UnsupportedStage()
