"""A plain ONNX export as a family: one image in, a saliency map out, as BiRefNet's and BRIA's
RMBG exports are. Its catalog line says how the model wants its input and gives its output:

- `input_size`: (width, height) the image is scaled to;
- `mean`, `std`: per channel, after the colours are brought to 0..1 (`scale`: "255" divides by
  255; "max" by the image's largest value, as rembg's sessions do);
- `activation`: "sigmoid" for logits, "none" for a map already in 0..1;
- `normalize`: "minmax" stretches the map to 0..1 (rembg's sessions do), "none" keeps it.

The first output's first channel is the map.
"""

from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image

from cutouts.removers.common import mask_up, model_input, session_options

DEFAULTS = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "scale": "255", "activation": "none",
            "normalize": "minmax"}


class OnnxRemover:
    def __init__(self, session, *, input_size, mean, std, scale, activation, normalize):
        if scale not in ("255", "max") or activation not in ("sigmoid", "none") or normalize not in ("minmax", "none"):
            raise ValueError(f"Options out of range: scale={scale!r}, activation={activation!r}, normalize={normalize!r}.")
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.input_size = tuple(input_size)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        self.scale, self.activation, self.normalize = scale, activation, normalize

    def mask(self, image: Image.Image) -> Image.Image:
        pixels = np.asarray(model_input(image, self.input_size), dtype=np.float32).transpose(2, 0, 1)
        pixels /= 255.0 if self.scale == "255" else max(float(pixels.max()), 1e-6)
        tensor = ((pixels - self.mean) / self.std)[np.newaxis].astype(np.float32)
        saliency = self.session.run(None, {self.input_name: tensor})[0][0, 0].astype(np.float32)
        if self.activation == "sigmoid":
            saliency = 1.0 / (1.0 + np.exp(-saliency))
        if self.normalize == "minmax":
            low, high = float(saliency.min()), float(saliency.max())
            saliency = (saliency - low) / max(high - low, 1e-6)
        # As rembg's sessions make their mask: truncated, not rounded.
        mask = (np.clip(saliency, 0.0, 1.0) * 255).astype(np.uint8)
        return mask_up(mask, image.size)


def load(spec, path: Path) -> OnnxRemover:
    import onnxruntime

    options = {**DEFAULTS, **dict(spec.options)}
    session = onnxruntime.InferenceSession(str(path), sess_options=session_options(),
                                           providers=list(settings.BG_REMOVE_PROVIDERS))
    return OnnxRemover(session, **options)
