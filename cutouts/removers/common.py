"""What every family of ONNX models shares: the session's options, and the mask's way back up."""

import numpy as np
from django.conf import settings
from PIL import Image

# The model's input is reduced from the image with a box filter down to at least this many times
# its size before the LANCZOS step (Pillow's `reducing_gap`): at 10 MP a fifth of LANCZOS's time
# from the full image, for a mask within IoU 0.99 of it (bench/README.md, job cost).
INPUT_REDUCING_GAP = 2.0


def session_options():
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = settings.BG_REMOVE_INTRA_OP_THREADS  # 0: ONNX Runtime's choice.
    options.inter_op_num_threads = 1  # Sequential execution (the default) runs one node at a time.
    # The memory pattern plans one block for a run's shape on the second run and keeps it beside
    # the arena the first run grew: 200 MB more per worker with u2netp, for no speed
    # (bench/README.md, job cost).
    options.enable_mem_pattern = False
    return options


def model_input(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The image's colours at the model's input size, reduced first. The colours alone: an RGBA
    image resized whole would be resampled premultiplied, changing colours under transparency."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=INPUT_REDUCING_GAP)


def mask_up(mask: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The model's mask (uint8) at the image's size: OpenCV's bilinear, Pillow's to within 1 of
    255 in a seventh of its time (SIMD); its array becomes the image's memory (no copy). One
    thread: a worker process is one core's."""
    import cv2

    cv2.setNumThreads(1)
    return Image.fromarray(cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR))
