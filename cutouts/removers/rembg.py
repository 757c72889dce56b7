"""rembg's sessions as a family: every model of rembg's own (u2net's, ISNet, BiRefNet, BRIA), and
files rembg loads by path through one of its sessions (u2netp-int8)."""

from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image

from cutouts.removers.common import mask_up, model_input, session_options

# What rembg's predict() is given for a model, beyond the image. u2net_cloth_seg answers one mask
# per kind of clothing (three cutouts stacked into one image three times as tall) unless told
# which: "attire" is the one mask of all the clothing.
PREDICT_OPTIONS = {"u2net_cloth_seg": {"cloth_category": "attire"}}


class RembgRemover:
    def __init__(self, session, options: dict):
        self.session = session
        self.options = options
        height, width = session.inner_session.get_inputs()[0].shape[-2:]
        # The (width, height) of the model's input when the model fixes it: [batch, channels, h, w].
        self.input_size = (width, height) if isinstance(width, int) and isinstance(height, int) else None

    def mask(self, image: Image.Image) -> Image.Image:
        """rembg's sessions squeeze the whole image into the model's fixed input (320x320 for the
        u2net family) with LANCZOS from the full image, and scale the mask back up with LANCZOS: at
        10 MP those two resizes cost a quarter of the model's own time. Here the session is given
        the image already at its input size, reduced first, so rembg resizes nothing, and the mask
        is scaled up once, bilinear: within IoU 0.99 of rembg's mask, a mean |delta alpha| under
        0.5/255 on the test photos (tests/cutouts/test_remover.py). A model whose input size is not
        fixed gets the image as it is."""
        if self.input_size is None:
            (mask,) = self.session.predict(image, **self.options)
            return mask
        (mask,) = self.session.predict(model_input(image, self.input_size), **self.options)
        return mask_up(np.asarray(mask), image.size)


def load(spec, path: Path) -> RembgRemover:
    from rembg import new_session

    # A file rembg does not name (u2netp-int8) is loaded by path through the session of its kind
    # (`u2net_custom`: u2netp's own pre- and post-processing); rembg never hears its name.
    where = {"model_path": str(path)} if spec.session else {}
    session = new_session(spec.session or spec.name, providers=list(settings.BG_REMOVE_PROVIDERS),
                          sess_opts=session_options(), **where)
    return RembgRemover(session, PREDICT_OPTIONS.get(spec.name, {}))
