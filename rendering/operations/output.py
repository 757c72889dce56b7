"""The response's own choices: the output format and how it is written (fm, q, lossless, auto,
chroma subsampling, palette size, colour space, DPI, IPTC, progressive JPEG) and access
(expires). No pixel work: the encoder (rendering/encode.py) reads them."""

from rendering.encode import PROFILE_SPACES, quality_for
from rendering.stage import Param, Stage
from rendering.values import boolean, choice, integer

FORMATS = {"jpg", "pjpg", "png", "png8", "png32", "webp", "avif", "gif", "json"}
FORMAT_ALIASES = {"jpeg": "jpg"}
LOSSY_FORMATS = {"jpg", "pjpg", "avif"}
JPEG_FORMATS = {"jpg", "pjpg"}
PALETTE_FORMATS = {"png8", "gif"}
# Formats whose file says its DPI (JFIF density, PNG pHYs), as imgix's dpi documentation lists.
DPI_FORMATS = {"jpg", "pjpg", "png", "png8", "png32"}
# Formats that carry an ICC profile in our encoders (GIF has none).
PROFILE_FORMATS = {"jpg", "pjpg", "png", "png8", "png32", "webp", "avif"}
CHROMA_SUBSAMPLINGS = {444, 422, 420}
# Colour spaces served (imgix's cs): renders are sRGB pixels (imaging/decode.py converts at
# decode). `srgb` and `tinysrgb` embed one compact sRGB profile; `strip` (our default) none;
# `origin` is served as imgix's own fallback, `srgb` (said in X-Render-Fallback).
COLOR_SPACES = {"strip", "srgb", "tinysrgb", "origin"}


def _fm(value: str) -> str | None:
    value = value.strip().lower()
    value = FORMAT_ALIASES.get(value, value)
    return value if value in FORMATS else None


def _auto(value: str) -> frozenset | None:
    # The one parameter that combines by repetition (auto=format&auto=compress): the parser
    # hands every occurrence over, comma-joined.
    return frozenset(v.strip().lower() for v in value.split(",") if v.strip()) or None


def _chromasub(value: str) -> int | None:
    digits = value.strip().replace(":", "")
    return int(digits) if digits.isdigit() and int(digits) in CHROMA_SUBSAMPLINGS else None


def png_plain(p) -> bool:
    """Whether PNG is written without any option (colour count, DPI, profile): a stored PNG made
    without them (a cutout) is then already the answer."""
    return not p.colorquant and not p.dpi and p.cs not in PROFILE_SPACES


class OutputStage(Stage):
    name = "output"
    pixels = False
    params = (
        # The format is keyed as negotiated (format_negotiate), on its own.
        Param("fm", _fm, "", keyed=False),
        Param("q", integer(0, 100)),
        Param("lossless", boolean, False),
        Param("auto", _auto, frozenset()),
        Param("chromasub", _chromasub, 420),
        Param("colorquant", integer(2, 256),
              differs="the palette's size in PNG8 and GIF; other formats have their colours reduced before encoding"),
        Param("cs", choice(COLOR_SPACES), "strip",
              differs="default `strip` (no profile; imgix keeps the origin's); `srgb` and `tinysrgb` embed one "
                      "588-byte sRGB profile; `origin` is served as `srgb`, imgix's fallback, said in "
                      "X-Render-Fallback (renders are converted to sRGB at decode)"),
        Param("dpi", integer(0, 65535), differs="JPEG (JFIF density) and PNG (pHYs); 0 writes none"),
        # Renders carry no metadata: `block` is what is done, `allow` is refused (unsupported.VALUES).
        Param("iptc", choice({"allow", "block"}), keyed=False,
              differs="`block` (what is done: renders carry no metadata); `allow` is a 400"),
        Param("jpg-progressive", boolean, False, aliases=("jpeg-progressive",),
              differs="default `false` (baseline; imgix's is `true`): progressive encoding costs about twice "
                      "the CPU; `fm=pjpg` is always progressive"),
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
        # enhance and redeye change pixels (enhance.py, faces.py), whatever the format.
        auto |= frozenset({"enhance", "redeye"} & p.auto)
        jpeg = final in ("", "jpg")  # pjpg is progressive whatever jpg-progressive says.
        return {
            "q": quality, "lossless": lossless, "auto": auto,
            "chromasub": p.chromasub if final == "" or final in JPEG_FORMATS else 420,
            # A palette format has 256 colours at most anyway.
            "colorquant": None if p.colorquant == 256 and final in PALETTE_FORMATS else p.colorquant,
            "cs": "srgb" if p.cs in PROFILE_SPACES and (final == "" or final in PROFILE_FORMATS) else "strip",
            "dpi": p.dpi if p.dpi and (final == "" or final in DPI_FORMATS) else None,
            "jpg_progressive": p.jpg_progressive if jpeg else False,
        }


class AccessStage(Stage):
    name = "access"
    pixels = False
    params = (Param("expires", integer(0, 2**53), keyed=False),)


STAGE = OutputStage()
ACCESS = AccessStage()
