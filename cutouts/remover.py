"""Background removal with rembg: one session per model per process (loaded once), the cutout."""

import ctypes
import math
import os
import select
import signal
import threading
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image, ImageChops, ImageOps

from core.errors import ServiceError
from core.model_files import MODELS, model_path, model_provisioned
from cutouts.edges import foreground_apply, mask_clean
from imaging.decode import EXIF_ORIENTATION


class ModelNotProvisionedError(ServiceError):
    status_code = 503
    code = "model_not_provisioned"


_sessions: dict = {}
_sessions_lock = threading.Lock()

# What rembg's predict() is given for a model, beyond the image. u2net_cloth_seg answers one mask
# per kind of clothing (three cutouts stacked into one image three times as tall) unless told
# which: "attire" is the one mask of all the clothing.
_PREDICT_OPTIONS = {"u2net_cloth_seg": {"cloth_category": "attire"}}


def models_missing(names) -> list[str]:
    """The models of `names` not provisioned here: unknown, absent, or failing their checksum."""
    return [name for name in names if not model_provisioned(name)]


def provision_hint(names) -> str:
    return f"python manage.py provision_models {' '.join(names)}"


def session_get(name: str):
    """The process's one session for `name`: the worker loads BG_REMOVE_MODELS at its start
    (config/celery_app.py), any other provisioned model on its first job, once."""
    session = _sessions.get(name)
    if session is not None:
        return session
    with _sessions_lock:  # Loading takes seconds and a model's memory: one thread loads, once.
        session = _sessions.get(name)
        if session is None:
            if name not in MODELS:  # No request can name one (sources/selectors.py): a bug, an internal error.
                raise LookupError(f"{name!r} is not a background-removal model this platform knows.")
            if not model_provisioned(name):
                raise ModelNotProvisionedError(
                    f"The background-removal model {name!r} is not provisioned (its file is missing or "
                    f"fails its checksum); run `{provision_hint([name])}`."
                )
            os.environ["U2NET_HOME"] = str(Path(settings.BG_REMOVE_MODEL_HOME).resolve())
            import onnxruntime
            from rembg import new_session

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = settings.BG_REMOVE_INTRA_OP_THREADS  # 0: ONNX Runtime's choice.
            options.inter_op_num_threads = 1  # Sequential execution (the default) runs one node at a time.
            # The memory pattern plans one block for a run's shape on the second run and keeps it
            # beside the arena the first run grew: 200 MB more per worker with u2netp, for no
            # speed (bench/README.md, job cost).
            options.enable_mem_pattern = False
            spec = MODELS[name]
            # A derived model is loaded by path through the session of its kind (u2netp-int8: rembg's
            # u2net_custom, u2netp's own pre- and post-processing); rembg never hears its name.
            where = {"model_path": str(model_path(name).resolve())} if spec.session else {}
            session = _sessions[name] = new_session(spec.session or name, providers=list(settings.BG_REMOVE_PROVIDERS),
                                                    sess_opts=options, **where)
    return session


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
    mask = _mask(image, session_get(model), _PREDICT_OPTIONS.get(model, {}))
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


# The model's input is reduced from the image with a box filter down to at least this many times
# its size before the LANCZOS step (Pillow's `reducing_gap`): at 10 MP a fifth of LANCZOS's time
# from the full image, for a mask within IoU 0.99 of it (bench/README.md, job cost).
_INPUT_REDUCING_GAP = 2.0


def _mask(image: Image.Image, session, options: dict) -> Image.Image:
    """The model's mask of `image` (RGB or RGBA), at the image's size ("L").

    rembg's sessions squeeze the whole image into the model's fixed input (320x320 for the
    u2net family) with LANCZOS from the full image, and scale the mask back up with LANCZOS: at
    10 MP those two resizes cost a quarter of the model's own time. Here the session is given the
    image already at its input size, reduced first, so rembg resizes nothing, and the mask is
    scaled up once, bilinear: within IoU 0.99 of rembg's mask, a mean |delta alpha| under 0.5/255
    on the test photos (tests/cutouts/test_remover.py). A model whose input size is not fixed
    gets the image as it is.
    """
    import cv2

    size = _input_size(session)
    if size is None:
        (mask,) = session.predict(image, **options)
        return mask
    # As rembg's normalize: the colours alone (an RGBA image resized whole would be resampled
    # premultiplied, changing colours under transparency that the model sees).
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    (mask,) = session.predict(rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=_INPUT_REDUCING_GAP),
                              **options)
    # OpenCV's bilinear: Pillow's to within 1 of 255, in a seventh of its time (SIMD); its array
    # becomes the image's memory (no copy). One thread: a worker process is one core's.
    cv2.setNumThreads(1)
    return Image.fromarray(cv2.resize(np.asarray(mask), image.size, interpolation=cv2.INTER_LINEAR))


def _input_size(session) -> tuple[int, int] | None:
    """The (width, height) of the model's input when the model fixes it: [batch, channels, h, w]."""
    height, width = session.inner_session.get_inputs()[0].shape[-2:]
    return (width, height) if isinstance(width, int) and isinstance(height, int) else None


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
