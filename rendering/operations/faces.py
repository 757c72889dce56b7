"""Faces: where the faces of an image are, and the stage that blurs or pixellates them (face-blur,
face-pixel) or takes the red out of their eyes (auto=redeye); crop=faces, fit=facearea and
faceindex/facepad (rendering/operations/resize.py) and faces=1 with fm=json
(rendering/services.py) ask the same finder.

The detector is OpenCV's Haar cascades (frontal, and profile both ways), whose trained files ship
inside the opencv-python-headless wheel: nothing is fetched at run time. It runs on a grey copy
at most DETECT_SIDE pixels long, so its cost does not grow with the image, and its answer is kept
on the image object (as imaging/decode.py keeps `geometry`): a render that asks twice about one
image detects once. A new image (a crop, a resize) asks afresh."""

from __future__ import annotations

import threading
import time

import numpy as np
from PIL import Image, ImageFilter

from imaging.decode import image_geometry
from rendering.operations.stylize import BLUR_WORK_SIGMA, PREMULTIPLIED
from rendering.stage import Param, Stage, StageContext
from rendering.values import boolean, integer

Face = tuple[float, float, float, float]  # x, y, width, height, in the image's own pixels.

# The long side of the grey copy the cascades scan, at most: a face under MIN_FACE pixels of it
# (3% of the long side) is not looked for. With SCALE_FACTOR's steps, the three scans of the
# worst image measured (a smooth noise, which the cascades reject late) take 1.5 CPU-s. A small
# image (a thumbnail to blur faces in) is scanned larger, up to SMALL_SIDE and at most UPSCALE
# times its size, so that its faces reach MIN_FACE.
DETECT_SIDE = 768
SMALL_SIDE = 384
UPSCALE = 2.0
MIN_FACE = 24
SCALE_FACTOR = 1.15
MIN_NEIGHBORS = 5
# A scan that starts past this much CPU time (an image built to keep the cascades busy) is
# skipped: the faces found so far are the answer.
DETECT_BUDGET = 1.5
# The most faces kept (the largest), so a picture of a crowd, or of wallpaper that looks like one,
# bounds the work of blurring them.
MAX_FACES = 32
# Two finds of one face by different cascades: the second is dropped when they overlap this much
# (of the smaller one's area).
SAME_FACE = 0.5
CASCADES = (("haarcascade_frontalface_alt2.xml", False), ("haarcascade_profileface.xml", False),
            ("haarcascade_profileface.xml", True))  # The profile cascade sees one side: mirrored for the other.
EYES = "haarcascade_eye.xml"
# auto=redeye: eyes are looked for in the upper EYE_ZONE of each face, on a grey copy EYE_SIDE
# pixels wide; in each eye, the pixels within PUPIL of its box's size from its centre whose red
# is over REDNESS times the mean of green and blue, and over it by RED_EXCESS (a flash's red, not
# skin or a dark lash), lose that excess.
EYE_ZONE = 0.6
EYE_SIDE = 128
PUPIL = 0.3
REDNESS = 2.0
RED_EXCESS = 60
# face-blur=100 is a gaussian of sigma a quarter of the face's longer side; face-pixel=100 blocks
# of a quarter of it (four across the face). Both scale down linearly.
FACE_EFFECT_AT_100 = 0.25
# Haar's boxes run from the brows to the mouth: an effect covers this much more on each side.
FACE_MARGIN = 0.1

_local = threading.local()  # A CascadeClassifier is not safe to share between threads.


def _cascades() -> dict:
    cascades = getattr(_local, "cascades", None)
    if cascades is None:
        import cv2  # Only a render that asks for faces loads OpenCV.

        cv2.setNumThreads(1)  # One render, one core: the render slots share the machine.
        cascades = {name: cv2.CascadeClassifier(cv2.data.haarcascades + name) for name in {*dict(CASCADES), EYES}}
        _local.cascades = cascades
    return cascades


def faces_find(image: Image.Image) -> tuple[Face, ...]:
    """The faces of `image`, left to right (then top to bottom), in the coordinates of its own
    size (also when it was decoded at reduced scale). Memoised on the image."""
    found = getattr(image, "faces", None)
    if found is None:
        found = _detect(image)
        image.faces = found
    return found


def faces_shared(image: Image.Image, context: StageContext | None, name: str) -> tuple[Face, ...]:
    """`faces_find`, and for the frames of one animation (`context.memo`, all one size) once for
    them all, on the first: 300 frames cost one detection, and a window centred on the faces
    does not jump from frame to frame. `name`: the stage asking (the sized frames are not the
    source's)."""
    memo = getattr(context, "memo", None)
    if memo is None:
        return faces_find(image)
    key = ("faces", name, image.size)
    if key not in memo:
        memo[key] = faces_find(image)
    image.faces = memo[key]
    return image.faces


def faces_area(faces: tuple[Face, ...], index: int | None = None) -> Face | None:
    """The box around every face, or around the `index`-th (1-based); None when there is no such face."""
    if index is not None:
        faces = faces[index - 1:index]
    if not faces:
        return None
    left, top = min(f[0] for f in faces), min(f[1] for f in faces)
    right, bottom = max(f[0] + f[2] for f in faces), max(f[1] + f[3] for f in faces)
    return (left, top, right - left, bottom - top)


def faces_json(image: Image.Image) -> list[dict]:
    """imgix's `Faces` list of fm=json with faces=1: each face's bounds, from the top left."""
    return [{"bounds": {"x": round(x, 2), "y": round(y, 2), "width": round(w, 2), "height": round(h, 2)}}
            for x, y, w, h in faces_find(image)]


def _detect(image: Image.Image) -> tuple[Face, ...]:
    geometry = image_geometry(image)
    box = geometry.box  # The decoded pixels that picture the whole image.
    scale = min(DETECT_SIDE / max(box), max(1.0, min(UPSCALE, SMALL_SIDE / max(box))))
    size = (max(1, round(box[0] * scale)), max(1, round(box[1] * scale)))
    if min(size) < MIN_FACE:
        return ()
    import cv2

    source = image if image.mode in ("RGB", "L") else image.convert("RGBA").convert("RGB")
    grey = source.resize(size, Image.Resampling.BILINEAR, box=(0, 0, *box), reducing_gap=2.0).convert("L")
    grey = cv2.equalizeHist(np.asarray(grey))
    mirrored = np.ascontiguousarray(grey[:, ::-1])
    start, found = time.process_time(), []
    for name, mirror in CASCADES:
        if time.process_time() - start > DETECT_BUDGET:
            break
        rects = _cascades()[name].detectMultiScale(mirrored if mirror else grey, scaleFactor=SCALE_FACTOR,
                                                   minNeighbors=MIN_NEIGHBORS, minSize=(MIN_FACE, MIN_FACE))
        for x, y, w, h in (tuple(int(v) for v in r) for r in rects):
            face = (size[0] - x - w if mirror else x, y, w, h)
            if not any(_overlap(face, kept) > SAME_FACE for kept in found):
                found.append(face)
    found = sorted(found, key=lambda f: f[2] * f[3], reverse=True)[:MAX_FACES]
    sx, sy = geometry.size[0] / size[0], geometry.size[1] / size[1]
    return tuple(sorted((x * sx, y * sy, w * sx, h * sy) for x, y, w, h in found))


def _overlap(a, b) -> float:
    """The shared area of two boxes, as a share of the smaller one's."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    return width * height / min(a[2] * a[3], b[2] * b[3])


def eyes_find(image: Image.Image, face: Face) -> list[tuple[float, float, float, float]]:
    """The eyes in `face` (x, y, width, height in `image`'s pixels, a sized image's own)."""
    x, y, w, h = face
    zone = (max(0, round(x)), max(0, round(y)),
            min(image.width, round(x + w)), min(image.height, round(y + h * EYE_ZONE)))
    if zone[2] - zone[0] < 8 or zone[3] - zone[1] < 8:
        return []
    import cv2

    scale = EYE_SIDE / (zone[2] - zone[0])
    size = (EYE_SIDE, max(1, round((zone[3] - zone[1]) * scale)))
    source = image if image.mode in ("RGB", "L") else image.convert("RGBA").convert("RGB")
    grey = cv2.equalizeHist(np.asarray(source.resize(size, Image.Resampling.BILINEAR, box=zone).convert("L")))
    least = max(8, EYE_SIDE // 10)
    rects = _cascades()[EYES].detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(least, least),
                                                maxSize=(EYE_SIDE // 2, EYE_SIDE // 2))
    return [(zone[0] + ex / scale, zone[1] + ey / scale, ew / scale, eh / scale) for ex, ey, ew, eh in
            (tuple(int(v) for v in r) for r in rects)]


def _red_removed(image: Image.Image, eye) -> tuple[Image.Image, tuple[int, int]] | None:
    """The eye's box with the red of its pupil taken out, and where it goes; None when it has none."""
    x, y, w, h = eye
    box = (max(0, int(x)), max(0, int(y)),
           min(image.width, int(np.ceil(x + w))), min(image.height, int(np.ceil(y + h))))
    if box[2] - box[0] < 2 or box[3] - box[1] < 2 or image.mode not in ("RGB", "RGBA"):
        return None
    pixels = np.asarray(image.crop(box)).astype(np.float32)
    red, rest = pixels[..., 0], (pixels[..., 1] + pixels[..., 2]) / 2
    rows, cols = np.ogrid[box[1]:box[3], box[0]:box[2]]
    near = (cols + 0.5 - (x + w / 2)) ** 2 + (rows + 0.5 - (y + h / 2)) ** 2 <= (PUPIL * max(w, h)) ** 2
    mask = near & (red > REDNESS * rest) & (red - rest > RED_EXCESS)
    if not mask.any():
        return None
    pixels[..., 0] = np.where(mask, rest, red)  # Red down to the grey of the other two: a dark pupil.
    return Image.fromarray(pixels.round().astype(np.uint8), image.mode), box[:2]


def face_region(face: Face, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixels face-blur and face-pixel change for `face`: its box and FACE_MARGIN around it,
    inside the image (left, top, right, bottom)."""
    x, y, w, h = face
    mx, my = w * FACE_MARGIN, h * FACE_MARGIN
    left, top = max(0, int(x - mx)), max(0, int(y - my))
    right, bottom = min(size[0], int(np.ceil(x + w + mx))), min(size[1], int(np.ceil(y + h + my)))
    return left, top, right, bottom


def _premultiplied(image: Image.Image) -> Image.Image:
    mode = PREMULTIPLIED.get(image.mode)
    return image.convert(mode) if mode else image


def _blurred(region: Image.Image, sigma: float) -> Image.Image:
    """A gaussian of `sigma`; past BLUR_WORK_SIGMA, on a copy that much smaller, scaled back up."""
    work = _premultiplied(region)
    factor = max(1, min(int(sigma // BLUR_WORK_SIGMA), min(region.size)))
    if factor == 1:
        out = work.filter(ImageFilter.GaussianBlur(sigma))
    else:
        small = work.reduce(factor).filter(ImageFilter.GaussianBlur(sigma / factor))
        out = small.resize(region.size, Image.Resampling.BICUBIC,
                           box=(0, 0, region.width / factor, region.height / factor))
    return out.convert(region.mode) if out.mode != region.mode else out


def _pixellated(region: Image.Image, block: int) -> Image.Image:
    """Blocks of `block` pixels from the region's top left, each the mean of what it covers."""
    small = _premultiplied(region).reduce(block)
    out = small.resize(region.size, Image.Resampling.NEAREST,
                       box=(0, 0, region.width / block, region.height / block))
    return out.convert(region.mode) if out.mode != region.mode else out


class FacesStage(Stage):
    """face-blur and face-pixel (0–100: how strongly each face found is blurred or pixellated,
    relative to the face's size), auto=redeye (the `auto` field is the output stage's), and
    faces=1, which adds the faces to fm=json's output."""

    name = "faces"
    params = (
        Param("face-blur", integer(0, 100), 0),
        Param("face-pixel", integer(0, 100), 0, aliases=("face-pixelate",)),
        Param("faces", boolean, False),
    )

    def active(self, p) -> bool:
        return bool(p.face_blur or p.face_pixel or "redeye" in p.auto)

    def effective(self, p, fmt):
        # faces=1 changes fm=json's output only, and face-blur/face-pixel an image only.
        return {"face_blur": p.face_blur, "face_pixel": p.face_pixel, "faces": bool(p.faces) and fmt == "json"}

    def apply(self, image, p, context: StageContext):
        if not self.active(p):
            return image
        faces = faces_shared(image, context, self.name)
        if not faces:
            return image
        out = image.copy()  # The one copy: at 50 MP, each is 150 MB.
        if "redeye" in p.auto:
            for eye in self._eyes(image, faces, context):
                fixed = _red_removed(image, eye)
                if fixed is not None:
                    out.paste(*fixed)
        # Every face's pixels before any face's effect, so two overlapping faces are not blurred twice.
        regions = [(face, face_region(face, image.size)) for face in faces] if p.face_blur or p.face_pixel else []
        parts = [(face, region, out.crop(region)) for face, region in regions
                 if region[2] - region[0] >= 2 and region[3] - region[1] >= 2]
        for face, region, part in parts:
            longest = max(face[2], face[3])
            if p.face_pixel:
                part = _pixellated(part, max(2, min(round(longest * FACE_EFFECT_AT_100 * p.face_pixel / 100),
                                                    min(part.size))))
            if p.face_blur:
                part = _blurred(part, longest * FACE_EFFECT_AT_100 * p.face_blur / 100)
            out.paste(part, region[:2])
        return out


    @staticmethod
    def _eyes(image, faces, context) -> list:
        """The eyes of every face; for an animation's frames, those of the first."""
        memo = getattr(context, "memo", None)
        key = ("eyes", image.size)
        if memo is not None and key in memo:
            return memo[key]
        eyes = [eye for face in faces for eye in eyes_find(image, face)]
        if memo is not None:
            memo[key] = eyes
        return eyes


STAGE = FacesStage()
