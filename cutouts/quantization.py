"""Builds u2netp-int8 from the checksummed u2netp file: static int8 quantisation, calibrated on fixed photos."""

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from PIL import Image

# Measured on this platform's photos against u2netp's own masks (docs/deploy.md, Models): dynamic
# quantisation and per-tensor weights destroyed the masks; static QDQ with per-channel weights and
# MinMax ranges keeps them within IoU 0.95, at 0.6× the inference time.

# Photos not in the test set (tests/fixtures, demo/origin), so the mask test measures the model on
# images it was not calibrated on. A fixed list in a fixed order: the ranges, and so the file, are
# a function of these bytes and the builder's versions alone.
CALIBRATION_HOME = Path(__file__).resolve().parent / "calibration"
CALIBRATION_PHOTOS = ("camera.jpg", "coffee.jpg", "rocket.jpg")
# Per-channel DequantizeLinear (its `axis`) needs opset 13; rembg's u2netp is opset 11, which the
# quantiser writes anyway and ONNX Runtime then refuses to load.
OPSET = 13
# The last decoder stage's convolution has biases up to 1361 beside activations near 1: one int8
# scale cannot hold both, and quantised it blurs the whole mask. It stays float, with its Relu and
# the residual Add it feeds.
KEEP_FLOAT = ("Conv_787", "Relu_788", "Add_789")
# u2netp's input as rembg's U2netpSession.predict prepares it (BaseSession.normalize), so the
# ranges are those of the tensors the model sees in production.
_SIZE, _MEAN, _STD = (320, 320), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has the VNNI instructions (AVX-512 VNNI or AVX-VNNI) ONNX Runtime's int8
    kernels are exact and fast with. Without them (AVX2 alone) its unsigned × signed products
    saturate in 16 bits: u2netp-int8's masks come out further from u2netp's (IoU 0.965 mean on
    the committed photos, against 0.979) and it runs at about 0.9× u2netp's time, not 0.5×."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return bool({"avx512_vnni", "avx_vnni"} & set(flags))


def calibration_input(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB").resize(_SIZE, Image.Resampling.LANCZOS), dtype=np.float64)
    pixels = pixels / max(pixels.max(), 1e-6)
    pixels = (pixels - _MEAN) / _STD
    return np.expand_dims(pixels.transpose((2, 0, 1)), 0).astype(np.float32)


class _Photos(CalibrationDataReader):
    def __init__(self, input_name: str, paths: list[Path]):
        self._inputs = iter({input_name: calibration_input(path)} for path in paths)

    def get_next(self):
        return next(self._inputs, None)


def model_quantize(*, source: Path, target: Path) -> dict:
    """Writes the quantised model of the u2netp file `source` to `target` (the caller verified the
    source and renames the target into place) and returns what the build record keeps of the build:
    the builder's versions and the calibration photos' digests."""
    model = version_converter.convert_version(onnx.load(source), OPSET)
    names = {node.name for node in model.graph.node}
    missing = [name for name in KEEP_FLOAT if name not in names]
    if missing:  # The recipe is u2netp's: another graph would be quantised whole, and broken.
        raise ValueError(f"{source} has no node {', '.join(missing)}: it is not u2netp.")
    paths = [CALIBRATION_HOME / name for name in CALIBRATION_PHOTOS]
    # It logs a warning to run its pre-processing (quant_pre_process) first: tried, the same masks
    # and the same inference time, so the graph is quantised as rembg ships it.
    quantize_static(
        model, target, _Photos(model.graph.input[0].name, paths),
        quant_format=QuantFormat.QDQ, per_channel=True, calibrate_method=CalibrationMethod.MinMax,
        # Unsigned activations, signed weights: the pairing ONNX Runtime's x86 kernels are fast for.
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        nodes_to_exclude=list(KEEP_FLOAT),
        # On the CPU whatever BG_REMOVE_PROVIDERS says: the ranges must not depend on the machine's GPU.
        calibration_providers=["CPUExecutionProvider"],
    )
    return {
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "calibration": {path.name: "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() for path in paths},
    }
