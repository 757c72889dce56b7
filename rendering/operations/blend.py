"""blend: a colour or an image composited over the image with one of imgix's blend modes.

The blend modes are the W3C Compositing and Blending Level 1 formulas (normal, multiply, screen,
overlay, darken, lighten, dodge, burn, hardlight, softlight, difference, exclusion, hue,
saturation, color, luminosity), imgix's default `overlay`. The colour's alpha (or the blend
image's, per pixel) times blend-alpha is the strength: the result is mixed with the image by it.
An image as the blend (a path on the source, a URL, a rendering URL) is one more way in: it
passes the same gate as `mark` (rendering/gate.py) and is fetched or rendered as a mark is
(rendering/services.py), then handed to this stage decoded."""

from types import SimpleNamespace

import numpy as np
from django.conf import settings
from PIL import Image, ImageFilter

from core.errors import ServiceError
from rendering.operations.mask import row_bands
from rendering.operations.resize import fit_apply, fit_size
from rendering.stage import Param, Stage
from rendering.values import MAX_DIMENSION, choice, color, dimension, integer, items

MODES = ("normal", "multiply", "screen", "overlay", "darken", "lighten", "dodge", "burn", "hardlight", "softlight",
         "difference", "exclusion", "hue", "saturation", "color", "luminosity")
SEPARABLE = MODES[:12]
NON_SEPARABLE_PIXELS = 2_000_000  # Of an image blend in hue/saturation/color/luminosity: about 1 CPU-s.
ALIGNS = {"top", "middle", "bottom", "left", "center", "right"}
FITS = {"clamp", "clip", "crop", "scale", "max"}
CROPS = {"top", "bottom", "left", "right", "faces"}


class BlendTooLargeError(ServiceError):
    status_code = 422
    code = "blend_too_large"


def blend_value(value: str) -> tuple | str | None:
    """A colour (RGBA), or the image it names (a path on the source, an http(s) URL or a rendering
    URL: rendering/marks.py reads it at the gate)."""
    rgba = color(value)
    if rgba is not None:
        return rgba
    return value.strip() or None


def _separable(mode: str, cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    """B(cb, cs) per channel, values in 0–1 (cb: the image, cs: the blend colour)."""
    if mode == "normal":
        return np.broadcast_to(cs, cb.shape)
    if mode == "multiply":
        return cb * cs
    if mode == "screen":
        return cb + cs - cb * cs
    if mode == "overlay":
        return _separable("hardlight", cs, cb)
    if mode == "darken":
        return np.minimum(cb, cs)
    if mode == "lighten":
        return np.maximum(cb, cs)
    if mode == "dodge":
        return np.where(cb == 0, 0.0, np.where(cs >= 1, 1.0, np.minimum(1.0, cb / np.maximum(1 - cs, 1e-6))))
    if mode == "burn":
        return np.where(cb >= 1, 1.0, np.where(cs <= 0, 0.0, 1 - np.minimum(1.0, (1 - cb) / np.maximum(cs, 1e-6))))
    if mode == "hardlight":
        return np.where(cs <= 0.5, cb * 2 * cs, _separable("screen", cb, 2 * cs - 1))
    if mode == "softlight":
        d = np.where(cb <= 0.25, ((16 * cb - 12) * cb + 4) * cb, np.sqrt(cb))
        return np.where(cs <= 0.5, cb - (1 - 2 * cs) * cb * (1 - cb), cb + (2 * cs - 1) * (d - cb))
    if mode == "difference":
        return np.abs(cb - cs)
    return cb + cs - 2 * cb * cs  # exclusion


def _lum(c: np.ndarray) -> np.ndarray:
    return c[..., 0:1] * 0.3 + c[..., 1:2] * 0.59 + c[..., 2:3] * 0.11


def _clip_color(c: np.ndarray) -> np.ndarray:
    lum = _lum(c)
    low, high = c.min(axis=-1, keepdims=True), c.max(axis=-1, keepdims=True)
    c = np.where(low < 0, lum + (c - lum) * lum / np.maximum(lum - low, 1e-6), c)
    return np.where(high > 1, lum + (c - lum) * (1 - lum) / np.maximum(high - lum, 1e-6), c)


def _set_lum(c: np.ndarray, lum: np.ndarray) -> np.ndarray:
    return _clip_color(c + (lum - _lum(c)))


def _sat(c: np.ndarray) -> np.ndarray:
    return c.max(axis=-1, keepdims=True) - c.min(axis=-1, keepdims=True)


def _set_sat(c: np.ndarray, sat: np.ndarray) -> np.ndarray:
    low, high = c.min(axis=-1, keepdims=True), c.max(axis=-1, keepdims=True)
    span = high - low
    scaled = np.where(span > 0, (c - low) * sat / np.maximum(span, 1e-6), 0.0)
    return scaled


def _non_separable(mode: str, cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    cs = np.broadcast_to(cs, cb.shape)
    if mode == "hue":
        return _set_lum(_set_sat(cs, _sat(cb)), _lum(cb))
    if mode == "saturation":
        return _set_lum(_set_sat(cb, _sat(cs)), _lum(cb))
    if mode == "color":
        return _set_lum(cs, _lum(cb))
    return _set_lum(cb, _lum(cs))  # luminosity


def blend_pixels(rgb: np.ndarray, rgba: tuple, mode: str, strength: float) -> np.ndarray:
    """`rgb` (uint8, H×W×3) with the colour blended over it in `mode`, mixed by `strength`."""
    cs = np.asarray(rgba[:3], dtype=np.float32) / 255
    if mode in SEPARABLE:
        # The blend colour is one value: each channel is a table of 256 entries.
        levels = np.arange(256, dtype=np.float32)[:, None] / 255
        table = _separable(mode, np.repeat(levels, 3, axis=1), cs[None, :])
        table = np.clip(np.rint((levels * (1 - strength) + table * strength) * 255), 0, 255).astype(np.uint8)
        return np.stack([table[rgb[..., i], i] for i in range(3)], axis=-1)
    cb = rgb.astype(np.float32) / 255
    out = cb * (1 - strength) + _non_separable(mode, cb, cs) * strength
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


LUT_SIZE = 33  # Points per axis of the non-separable modes' 3D table (Pillow interpolates between).


def blend_lut(rgba: tuple, mode: str, strength: float) -> ImageFilter.Color3DLUT:
    """A non-separable mode (hue, saturation, color, luminosity) as a 3D colour table: the
    formula on 33³ colours, interpolated by Pillow in C for every pixel (per-pixel numpy maths
    took 25 CPU-s on 50 megapixels)."""
    grid = np.linspace(0.0, 1.0, LUT_SIZE, dtype=np.float32)
    b, g, r = np.meshgrid(grid, grid, grid, indexing="ij")  # Pillow's order: red varies fastest.
    cb = np.stack([r, g, b], axis=-1).reshape(-1, 3)
    cs = np.asarray(rgba[:3], dtype=np.float32) / 255
    out = np.clip(cb * (1 - strength) + _non_separable(mode, cb, cs) * strength, 0.0, 1.0)
    return ImageFilter.Color3DLUT(LUT_SIZE, out.ravel().tolist())


def _align(p) -> tuple[str, str]:
    """blend-align as (vertical, horizontal); an axis it does not name is top or left."""
    vertical = next((a for a in p.blend_align if a in ("top", "middle", "bottom")), "top")
    horizontal = next((a for a in p.blend_align if a in ("left", "center", "right")), "left")
    return vertical, horizontal


class BlendStage(Stage):
    """blend (a colour, which blend-color names too, or an image), blend-mode, blend-alpha, and
    where it goes: a colour covers blend-w×blend-h (pixels, or a ratio of the image; default the
    whole image); an image is drawn at its own size, or fitted into blend-w×blend-h by blend-fit
    (crop anchored by blend-crop), or with blend-size=inherit cropped to cover the whole image;
    either is placed by blend-align (default top-left) and blend-x/blend-y, inside blend-pad."""

    name = "blend"
    params = (
        Param("blend", blend_value, aliases=("b",)),
        Param("blend-color", color, aliases=("blendcolor", "blend-clr", "blendclr")),
        Param("blend-mode", choice(set(MODES)), "overlay", aliases=("bm", "blendmode")),
        Param("blend-alpha", integer(0, 100), 100, aliases=("balph", "blendalpha")),
        Param("blend-w", dimension(), aliases=("bw", "blendw")),
        Param("blend-h", dimension(), aliases=("bh", "blendh")),
        Param("blend-align", items(ALIGNS), ("top", "left"), aliases=("ba", "blendalign")),
        Param("blend-x", integer(-MAX_DIMENSION, MAX_DIMENSION), 0, aliases=("bx", "blendx")),
        Param("blend-y", integer(-MAX_DIMENSION, MAX_DIMENSION), 0, aliases=("by", "blendy")),
        Param("blend-pad", integer(0, MAX_DIMENSION), 0, aliases=("bp", "blendpad")),
        # An image's: how it is sized into blend-w×blend-h (or, with blend-size=inherit, the base).
        Param("blend-fit", choice(FITS), "clip", aliases=("bf", "blendfit")),
        Param("blend-crop", items(CROPS), (), aliases=("bc", "blendcrop")),
        Param("blend-size", choice({"inherit"}), "", aliases=("bs", "blendsize")),
    )


    def _color(self, p) -> tuple | None:
        rgba = p.blend_color or (p.blend if isinstance(p.blend, tuple) else None)
        return rgba if rgba is not None and rgba[3] > 0 and p.blend_alpha > 0 else None

    @staticmethod
    def _image(p) -> bool:
        return isinstance(p.blend, str) and not p.blend_color and p.blend_alpha > 0

    def active(self, p) -> bool:
        return self._color(p) is not None or self._image(p)

    def effective(self, p, fmt):
        defaults = self.fields
        if self._image(p):
            return self._image_effective(p, defaults)
        rgba = self._color(p)
        if rgba is None:
            return {f: defaults[f] for f in self.keyed_fields}
        region = bool(p.blend_w or p.blend_h)
        vertical, horizontal = _align(p)
        out = {f: defaults[f] for f in self.keyed_fields}
        out.update(blend=rgba, blend_mode=p.blend_mode, blend_alpha=p.blend_alpha)
        if region:
            out.update(blend_w=p.blend_w, blend_h=p.blend_h, blend_align=(vertical, horizontal),
                       blend_x=p.blend_x, blend_y=p.blend_y, blend_pad=p.blend_pad)
        return out

    def _image_effective(self, p, defaults) -> dict:
        out = {f: defaults[f] for f in self.keyed_fields}
        blend = self.image_ref_canonical(p.blend)
        vertical, horizontal = _align(p)
        inherit = p.blend_size == "inherit"
        sized = bool(p.blend_w or p.blend_h) and not inherit
        out.update(blend=blend, blend_mode=p.blend_mode, blend_alpha=p.blend_alpha,
                   blend_align=(vertical, horizontal), blend_x=p.blend_x, blend_y=p.blend_y, blend_pad=p.blend_pad,
                   blend_size=p.blend_size, blend_w=p.blend_w if sized else None, blend_h=p.blend_h if sized else None,
                   blend_fit=p.blend_fit if sized else "clip",
                   blend_crop=p.blend_crop if inherit or (sized and p.blend_fit == "crop") else ())
        return out

    def drawn_size(self, base, blend, p) -> tuple[int, int]:
        """The blend image's size as drawn on a base of `base`, without pixels. At most the base's
        size or RENDER_MAX_MARK_PIXELS, whichever is more: what shows beyond the base is cut off."""
        if p.blend_size == "inherit":
            return base
        if not (p.blend_w or p.blend_h):
            size = blend
        else:
            scale = p.dpr if p.w or p.h else 1.0
            w = p.blend_w.pixels(base[0]) if p.blend_w and p.blend_w.ratio else (
                round(p.blend_w.value * scale) if p.blend_w else None)
            h = p.blend_h.pixels(base[1]) if p.blend_h and p.blend_h.ratio else (
                round(p.blend_h.value * scale) if p.blend_h else None)
            w = w or max(1, round(h * blend[0] / blend[1]))
            h = h or max(1, round(w * blend[1] / blend[0]))
            size = fit_size(blend, (min(w, MAX_DIMENSION), min(h, MAX_DIMENSION)), p.blend_fit)
        return size

    def check(self, base, blend, p) -> None:
        """Before any pixel work: the drawn blend image within the larger of the base and
        RENDER_MAX_MARK_PIXELS (a 422 naming it)."""
        drawn = self.drawn_size(base, blend, p)
        limit = max(base[0] * base[1], settings.RENDER_MAX_MARK_PIXELS)
        if drawn[0] * drawn[1] > limit:
            raise BlendTooLargeError(
                f"The blend image would be {drawn[0]}×{drawn[1]} as drawn, over the limit of {limit:,} pixels "
                "(the image's own size, or RENDER_MAX_MARK_PIXELS when larger); ask for a smaller blend-w/blend-h.")
        # hue, saturation, color and luminosity mix two images pixel by pixel with several passes
        # of arithmetic (5 CPU-s for 12 megapixels): the part drawn on the image is bounded lower.
        covered = min(drawn[0], base[0]) * min(drawn[1], base[1])
        if p.blend_mode not in SEPARABLE and covered > NON_SEPARABLE_PIXELS:
            raise BlendTooLargeError(
                f"blend-mode={p.blend_mode} with an image would mix {covered:,} pixels; with an image the hue, "
                f"saturation, color and luminosity modes are limited to {NON_SEPARABLE_PIXELS:,} pixels. Ask for a "
                "smaller image or blend region, or another mode.")

    def _region(self, size, p) -> tuple[int, int, int, int]:
        """The box the colour covers, in output pixels (lengths times dpr with a w or h, as pad)."""
        width, height = size
        if not (p.blend_w or p.blend_h):
            return (0, 0, width, height)
        scale = p.dpr if p.w or p.h else 1.0
        w = p.blend_w.pixels(width) if p.blend_w and p.blend_w.ratio else round((p.blend_w.value if p.blend_w
                                                                                  else width / scale) * scale)
        h = p.blend_h.pixels(height) if p.blend_h and p.blend_h.ratio else round((p.blend_h.value if p.blend_h
                                                                                   else height / scale) * scale)
        w, h = min(max(w, 1), width), min(max(h, 1), height)
        pad = round(p.blend_pad * scale)
        vertical, horizontal = _align(p)
        x = {"left": pad, "center": (width - w) // 2, "right": width - w - pad}[horizontal] + round(p.blend_x * scale)
        y = {"top": pad, "middle": (height - h) // 2, "bottom": height - h - pad}[vertical] + round(p.blend_y * scale)
        left, top = min(max(x, 0), width), min(max(y, 0), height)
        return (left, top, min(width, max(left, x + w)), min(height, max(top, y + h)))

    def _image_apply(self, image, blend, p):
        # crop=faces centres on the blend image's own faces (rendering/operations/faces.py).
        crop = SimpleNamespace(crop=p.blend_crop, fp_x=0.5, fp_y=0.5, fp_z=1.0, faceindex=None, facepad=1.0,
                               fill="", fill_color=None)
        size = self.drawn_size(image.size, blend.size, p)
        fit = "crop" if p.blend_size == "inherit" else (p.blend_fit if (p.blend_w or p.blend_h) else "scale")
        layer = fit_apply(blend.convert("RGBA"), size, fit, crop) if size != blend.size else blend.convert("RGBA")
        width, height = image.size
        pad = round(p.blend_pad * (p.dpr if p.w or p.h else 1.0))
        vertical, horizontal = _align(p)
        x = {"left": pad, "center": (width - layer.width) // 2, "right": width - layer.width - pad}[horizontal]
        y = {"top": pad, "middle": (height - layer.height) // 2, "bottom": height - layer.height - pad}[vertical]
        x, y = x + p.blend_x, y + p.blend_y
        box = (max(0, x), max(0, y), min(width, x + layer.width), min(height, y + layer.height))
        if box[2] <= box[0] or box[3] <= box[1]:
            return image
        mode = image.mode
        out = image.convert("RGBA" if "A" in mode or image.has_transparency_data else "RGB") if mode not in (
            "RGB", "RGBA") else image.copy()
        for band in row_bands((box[2] - box[0], box[3] - box[1])):
            target = (box[0], box[1] + band[1], box[2], box[1] + band[3])
            source = (target[0] - x, target[1] - y, target[2] - x, target[3] - y)
            base = np.asarray(out.crop(target))
            over = np.asarray(layer.crop(source), dtype=np.float32) / 255
            cb = base[..., :3].astype(np.float32) / 255
            strength = over[..., 3:4] * (p.blend_alpha / 100)
            mixed = _separable(p.blend_mode, cb, over[..., :3]) if p.blend_mode in SEPARABLE else _non_separable(
                p.blend_mode, cb, over[..., :3])
            rgb = np.clip(np.rint((cb * (1 - strength) + mixed * strength) * 255), 0, 255).astype(np.uint8)
            if out.mode == "RGBA":
                rgb = np.concatenate([rgb, base[..., 3:4]], axis=-1)
            out.paste(Image.fromarray(rgb, out.mode), target[:2])
        return out

    def apply(self, image, p, context):
        if self._image(p):
            return self._image_apply(image, context.blend, p) if context.blend is not None else image
        rgba = self._color(p)
        if rgba is None:
            return image
        mode = image.mode
        if mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in mode or image.has_transparency_data else "RGB")
        elif p.blend_mode in SEPARABLE:
            image = image.copy()  # Painted in place, band by band.
        left, top, right, bottom = self._region(image.size, p)
        strength = rgba[3] / 255 * p.blend_alpha / 100
        if p.blend_mode not in SEPARABLE:
            lut = blend_lut(rgba, p.blend_mode, strength)
            box = (left, top, right, bottom)
            if box == (0, 0, *image.size):
                return image.filter(lut)  # Alpha passes through.
            if right > left and bottom > top:
                part = image.crop(box).filter(lut)
                image = image.copy()
                image.paste(part, box[:2])
            return image
        for band in row_bands((right - left, bottom - top)):
            box = (left, top + band[1], right, top + band[3])
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            part = image.crop(box)
            pixels = np.asarray(part)
            rgb = blend_pixels(np.ascontiguousarray(pixels[..., :3]), rgba, p.blend_mode, strength)
            if part.mode == "RGBA":
                rgb = np.concatenate([rgb, pixels[..., 3:4]], axis=-1)  # The image's alpha is kept.
            image.paste(Image.fromarray(rgb, part.mode), box[:2])
        return image


STAGE = BlendStage()
