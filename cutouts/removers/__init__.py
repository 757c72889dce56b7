"""The remover contract: a model family loads a model's file once per process and gives the mask
of an image. The job (cutouts/remover.py: the cutout, its refinements, the stored PNG) does the
rest, the same for every family.

A family is a module with one function, `load(spec, path) -> Remover`: `spec` is the model's line
in the catalog (core/model_files.py `MODELS`: its file, checksum and the family's `options`),
`path` its provisioned, checksummed file. rembg's sessions are the first family; a plain ONNX
export (a BiRefNet or RMBG file, say) is `onnx`, given its input size and normalisation on its
catalog line. A new family, a remote service for instance, is one module here, a line in
`FAMILIES`, and catalog lines naming it.
"""

import os
import threading
from pathlib import Path
from typing import Protocol

from django.conf import settings
from PIL import Image

from core.errors import ServiceError
from core.model_files import MODELS, model_path, model_provisioned
from cutouts.removers import onnx, rembg


class Remover(Protocol):
    def mask(self, image: Image.Image) -> Image.Image:
        """The subject's mask of `image` (upright, RGB or RGBA): mode "L", the image's size,
        255 for subject, 0 for background."""


FAMILIES = {"rembg": rembg, "onnx": onnx}


class ModelNotProvisionedError(ServiceError):
    status_code = 503
    code = "model_not_provisioned"


_removers: dict[str, Remover] = {}
_lock = threading.Lock()


def provision_hint(names) -> str:
    return f"python manage.py provision_models {' '.join(names)}"


def remover_get(name: str) -> Remover:
    """The process's one remover for model `name`: the worker loads BG_REMOVE_MODELS at its start
    (config/celery_app.py), any other provisioned model on its first job, once."""
    remover = _removers.get(name)
    if remover is not None:
        return remover
    with _lock:  # Loading takes seconds and a model's memory: one thread loads, once.
        remover = _removers.get(name)
        if remover is None:
            spec = MODELS.get(name)
            if spec is None:  # No request can name one (sources/selectors.py): a bug, an internal error.
                raise LookupError(f"{name!r} is not a background-removal model this platform knows.")
            if not model_provisioned(name):
                raise ModelNotProvisionedError(
                    f"The background-removal model {name!r} is not provisioned (its file is missing or "
                    f"fails its checksum); run `{provision_hint([name])}`."
                )
            family = FAMILIES.get(spec.family)
            if family is None:
                raise LookupError(f"The model {name!r} names the family {spec.family!r}, which is not one of "
                                  f"{sorted(FAMILIES)}.")
            # rembg reads `$U2NET_HOME/<name>.onnx`.
            os.environ["U2NET_HOME"] = str(Path(settings.BG_REMOVE_MODEL_HOME).resolve())
            remover = _removers[name] = family.load(spec, model_path(name).resolve())
    return remover
