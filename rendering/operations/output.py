"""The response's own choices: the output format and its quality (fm, q, lossless, auto) and
access (expires). No pixel work: the encoder (rendering/encode.py) reads them."""

from rendering.encode import quality_for
from rendering.stage import Param, Stage
from rendering.values import boolean, integer

FORMATS = {"jpg", "pjpg", "png", "png8", "png32", "webp", "avif", "gif", "json"}
FORMAT_ALIASES = {"jpeg": "jpg"}
LOSSY_FORMATS = {"jpg", "pjpg", "avif"}


def _fm(value: str) -> str | None:
    value = value.strip().lower()
    value = FORMAT_ALIASES.get(value, value)
    return value if value in FORMATS else None


def _auto(value: str) -> frozenset | None:
    # The one parameter that combines by repetition (auto=format&auto=compress): the parser
    # hands every occurrence over, comma-joined.
    return frozenset(v.strip().lower() for v in value.split(",") if v.strip()) or None


class OutputStage(Stage):
    name = "output"
    pixels = False
    params = (
        # The format is keyed as negotiated (format_negotiate), on its own.
        Param("fm", _fm, "", keyed=False),
        Param("q", integer(0, 100)),
        Param("lossless", boolean, False),
        Param("auto", _auto, frozenset()),
    )

    def effective(self, p, fmt):
        # "" is the origin's own format (unknown here); a cutout's default is PNG.
        compress = "compress" in p.auto
        final = fmt or ("png" if p.bg_remove and not compress else "")
        lossless = p.lossless and (final == "webp" or (final == "" and not compress))
        quality = None
        if final == "" or final in LOSSY_FORMATS or (final == "webp" and not lossless):
            quality = quality_for(p)  # q, else the default it stands for (75, or 45 with auto=compress).
        # auto=compress picks the format by transparency, PNG8 rather than PNG with auto=format;
        # auto=enhance changes the pixels (rendering/operations/enhance.py) whatever the format.
        auto = frozenset({"compress", "format"} & p.auto) if not fmt and compress else frozenset()
        auto |= frozenset({"enhance"} & p.auto)
        return {"q": quality, "lossless": lossless, "auto": auto}


class AccessStage(Stage):
    name = "access"
    pixels = False
    params = (Param("expires", integer(0, 2**53), keyed=False),)


STAGE = OutputStage()
ACCESS = AccessStage()
