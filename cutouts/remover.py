"""The cutout: the mask of the model's remover (cutouts/removers/, loaded once per process), refined,
as straight alpha over the photo's colours."""

import ctypes
import math
import os
import select
import signal
import time

import numpy as np
from django.conf import settings
from PIL import Image, ImageChops, ImageOps

from core.model_files import model_provisioned
from cutouts.edges import foreground_apply, mask_clean
from cutouts.removers import remover_get
from imaging.decode import EXIF_ORIENTATION


def models_missing(names) -> list[str]:
    """The models of `names` not provisioned here: unknown, absent, or failing their checksum."""
    return [name for name in names if not model_provisioned(name)]


def session_get(name: str):
    """The rembg session of a model of rembg's family (bare rembg's own calls, in tests and benches)."""
    return remover_get(name).session


# clean-edges, the default: the mask's faint noise removed, and the old background's colour taken
# out of the soft edge (cutouts/edges.py), in-process: its cost follows the edge. clean-edges-ml:
# the same colours by pymatting's whole-image estimate (slower; in a child process, bounded).
REFINEMENTS = ("clean-edges", "none", "post-process", "alpha-matting", "clean-edges-ml")


def providers_missing(names) -> list[str]:
    """Those of the execution providers `names` this process's ONNX Runtime does not have."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    return [name for name in names if name not in available]


def inference_size(width: int, height: int) -> tuple[int, int] | None:
    """The size an origin is scaled to before the model, or None when it is small enough.

    imgix caps background-removal output at 10 MP ("8000x5000 → 4000x2500"): the aspect ratio is
    kept and the pixel count brought under BG_REMOVE_MAX_PIXELS, so a 49 MP photo costs what a
    10 MP one does.
    """
    limit = settings.BG_REMOVE_MAX_PIXELS
    if width * height <= limit:
        return None
    scale = math.sqrt(limit / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def cutout(image: Image.Image, *, model: str, refinement: str = "none") -> tuple[Image.Image, str]:
    """The image with its background made transparent (RGBA, same size), and a note for the job.

    One inference whatever the refinement: the mask is computed once and refined after. The
    colours are the photo's own with the mask as alpha (straight alpha), not rembg's composite
    over transparent black, which darkens every soft edge by its alpha and again on every later
    composite (`bg`, marks, JPEG flattening). "clean-edges" also removes the mask's faint noise
    and the old background's colour from the edges (cutouts/edges.py); "clean-edges-ml" the
    colours only, by pymatting's estimate_foreground_ml over the whole image.
    """
    image = _upright(image)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    mask = remover_get(model).mask(image)
    if refinement == "post-process":
        from rembg.bg import post_process

        mask = Image.fromarray(post_process(np.asarray(mask)))  # As rembg.remove does, at full size.
    if refinement == "clean-edges":
        alpha = mask_clean(np.asarray(mask if mask.mode == "L" else mask.convert("L")))
        del mask  # Ten megabytes at 10 MP, let go before the cutout is made.
        return _clean_edges(image, alpha), ""
    if refinement not in ("alpha-matting", "clean-edges-ml"):
        return _straight(image, mask), ""
    budget, memory = settings.BG_REMOVE_MATTING_SECONDS, settings.BG_REMOVE_MATTING_MAX_BYTES
    name = "Alpha matting" if refinement == "alpha-matting" else "Edge cleaning"
    compute = _alpha_matting if refinement == "alpha-matting" else _clean_edges_ml
    try:
        return _refine_in_child(compute, image, mask, seconds=budget, max_bytes=memory), ""
    except _MattingTimeout:
        note = f"{name} took longer than its budget of {budget:g} s; the plain mask was used."
    except MemoryError:
        note = f"{name} needed more than its memory budget of {memory // 2**20} MiB; the plain mask was used."
    except ValueError:
        note = f"{name} could not refine this image; the plain mask was used."
    return _straight(image, mask), note


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says, as rembg.remove turns it (image_decode's
    images are upright already); itself, not a copy, when there is nothing to turn."""
    if image.getexif().get(EXIF_ORIENTATION, 1) == 1:
        return image
    return ImageOps.exif_transpose(image)


# 255 where the alpha is above zero, 0 where it is zero.
_SHOWN = [0] + [255] * 255
# The straight-alpha image is made this many bytes of it at a time: what it allocates beside the
# photo and the result stays this size (at the 10 MP cap the photo and the result are 40 MB each),
# and stays in the CPU's cache (bands of 1 MB are as fast as the whole image in one go).
_BAND_BYTES = 1 << 20


def _straight(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The photo's colours with the mask as alpha (times the photo's own alpha, if it has one).
    Fully transparent pixels are stored black: nothing shows them, and zeros keep the stored PNG
    small. Pillow's own operations, each one pass in C, band by band: no numpy copies."""
    mask = mask if mask.mode == "L" else mask.convert("L")
    alpha = ImageChops.multiply(image.getchannel("A"), mask) if "A" in image.getbands() else mask
    straight = Image.new("RGBA", image.size, None)  # Not initialised: every band is pasted over it.
    width, height = image.size
    rows = max(1, _BAND_BYTES // (4 * width))
    for top in range(0, height, rows):
        box = (0, top, width, min(top + rows, height))
        part_alpha = alpha.crop(box)
        shown = part_alpha.point(_SHOWN)
        colours = image.crop(box)
        colours = colours if colours.mode == "RGB" else colours.convert("RGB")
        # min(colour, 255) where shown, min(colour, 0) where not.
        part = ImageChops.darker(colours, Image.merge("RGB", (shown, shown, shown)))
        part.putalpha(part_alpha)  # RGB to RGBA in place: Pillow holds RGB in four bytes a pixel.
        straight.paste(part, box)
    return straight


def _alpha_matting(image: Image.Image, mask: Image.Image) -> Image.Image:
    from rembg.bg import alpha_matting_cutout

    return alpha_matting_cutout(image, mask, 240, 10, 10)


def _clean_edges(image: Image.Image, alpha: np.ndarray) -> Image.Image:
    """Straight alpha over the cleaned mask (mask_clean's), whose colours where it is soft are the subject's
    alone (the old background's taken out), estimated in the soft band only."""
    straight = _straight(image, Image.fromarray(alpha, "L"))
    # Read from the photo and written into the cutout a stripe at a time: no full-size copy.
    foreground_apply(image if image.mode == "RGB" else image.convert("RGB"), alpha, straight)
    return straight


def _clean_edges_ml(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Straight alpha whose colours, where the mask is soft, are the foreground's alone, by
    pymatting's multi-level estimate over the whole image."""
    from pymatting import estimate_foreground_ml

    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    alpha = np.asarray(mask.convert("L"), dtype=np.float64) / 255.0
    foreground = estimate_foreground_ml(rgb, alpha)
    colours = Image.fromarray(np.clip(foreground * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    return _straight(colours if "A" not in image.getbands() else _with_alpha(colours, image), mask)


def _with_alpha(colours: Image.Image, image: Image.Image) -> Image.Image:
    rgba = colours.convert("RGBA")
    rgba.putalpha(image.getchannel("A"))
    return rgba


class _MattingTimeout(Exception):
    pass


_PR_SET_PDEATHSIG = 1


def _refine_in_child(compute, image: Image.Image, mask: Image.Image, *, seconds: float,
                     max_bytes: int) -> Image.Image:
    """`compute(image, mask)` (alpha matting, edge cleaning) in a forked child, killed at the time
    budget or once it holds
    `max_bytes` of its own memory, so neither its CPU nor its memory outlives the budget (a
    thread could only be abandoned, running on and holding gigabytes after the job ended).

    os.fork, not multiprocessing: Celery's prefork pool processes are daemonic and may not have
    multiprocessing children, and a fresh interpreter would spend seconds importing pymatting.
    The child only computes and writes its result to a pipe. Numba runs its parallel kernels on
    its own `workqueue` threads (config/celery_app.py), which survive a fork; GNU OpenMP's would
    abort the child.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # The child: never returns.
        status = 1
        try:
            os.close(read_end)
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # Dies with its worker.
            try:
                result = compute(image, mask)
                payload = b"K" + f"{result.mode}:{result.width}:{result.height}\n".encode() + result.tobytes()
            except ValueError:
                payload = b"V"
            except MemoryError:
                payload = b"M"
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + seconds
    try:
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _MattingTimeout()
                if not select.select([pipe], [], [], min(left, 0.2))[0]:
                    if _private_bytes(pid) > max_bytes:
                        raise MemoryError("alpha matting went over its memory budget")
                    continue
                chunk = pipe.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)  # At the budget, or an already finished child: gone either way.
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    data = b"".join(chunks)
    if data[:1] == b"K":
        header, _, pixels = data[1:].partition(b"\n")
        mode, width, height = header.decode().split(":")
        return Image.frombytes(mode, (int(width), int(height)), pixels)
    if data[:1] == b"V":
        raise ValueError("alpha matting could not refine the image")
    raise MemoryError("alpha matting ran out of its memory budget")  # "M", or the child died.


def _private_bytes(pid: int) -> int:
    # What the child holds of its own: pages it wrote (not those still shared with its parent).
    # Not an address-space rlimit: numba's and the libraries' reservations would exhaust that first.
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            return sum(int(line.split()[1]) * 1024 for line in rollup
                       if line.startswith(("Private_Dirty:", "Private_Clean:")))
    except (FileNotFoundError, ProcessLookupError):
        return 0
