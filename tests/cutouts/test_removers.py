"""The remover contract: a family other than rembg's is one module and a catalog line. The plain
ONNX family, given u2netp's file and the normalisation rembg's session uses, must give rembg's
mask; and a catalog line naming it serves a whole cutout through the job's own function."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from core.model_files import MODELS, model_path
from cutouts import removers
from cutouts.remover import cutout
from cutouts.removers import FAMILIES, ModelNotProvisionedError, remover_get
from cutouts.removers.onnx import OnnxRemover
from tests.conftest import FIXTURES

# The catalog line an operator would add for a plain export: u2netp's file, read as rembg reads it.
U2NETP_AS_ONNX = dict(family="onnx", options=(("input_size", (320, 320)), ("scale", "max"),
                                              ("activation", "none"), ("normalize", "minmax")))


@pytest.fixture
def onnx_u2netp(settings, tmp_path):
    """A catalog line `u2netp-plain` of the onnx family over a copy of u2netp's checksummed file."""
    name = "u2netp-plain"
    spec = dataclasses.replace(MODELS["u2netp"], name=name, wheel="", member="", **U2NETP_AS_ONNX)
    home = tmp_path / "models"
    home.mkdir()
    (home / "u2netp.onnx").write_bytes(model_path("u2netp").read_bytes())
    (home / f"{name}.onnx").write_bytes(model_path("u2netp").read_bytes())
    settings.BG_REMOVE_MODEL_HOME = home
    MODELS[name] = spec
    yield name
    del MODELS[name]
    removers._removers.pop(name, None)


def masks(name):
    photo = Image.open(FIXTURES / "astronaut.jpg").convert("RGB")
    return photo, np.asarray(remover_get(name).mask(photo), dtype=np.int16)


def test_the_onnx_family_gives_rembgs_mask_from_the_same_file(onnx_u2netp):
    photo, plain = masks(onnx_u2netp)
    _, rembg = masks("u2netp")
    remover = remover_get(onnx_u2netp)
    assert isinstance(remover, OnnxRemover)
    assert type(remover_get("u2netp")).__module__ == "cutouts.removers.rembg"
    assert plain.shape == rembg.shape == (photo.height, photo.width)
    # The same arithmetic in float32 rather than float64: at most one level apart, almost never.
    assert np.abs(plain - rembg).max() <= 1
    assert np.mean(plain != rembg) < 0.01
    assert 0.05 < (plain >= 128).mean() < 0.95  # A subject and a background, not a blank mask.


def test_a_catalog_line_of_the_onnx_family_serves_a_whole_cutout(onnx_u2netp):
    photo = Image.open(FIXTURES / "astronaut.jpg")
    plain, note = cutout(photo, model=onnx_u2netp, refinement="clean-edges")
    ours, _ = cutout(photo, model="u2netp", refinement="clean-edges")
    assert note == "" and plain.mode == "RGBA" and plain.size == photo.size
    alpha_plain = np.asarray(plain.getchannel("A"), dtype=np.int16)
    alpha_rembg = np.asarray(ours.getchannel("A"), dtype=np.int16)
    assert np.abs(alpha_plain - alpha_rembg).mean() < 0.5


def test_a_family_not_provisioned_or_unknown_is_refused_by_name(onnx_u2netp, settings, tmp_path):
    (settings.BG_REMOVE_MODEL_HOME / f"{onnx_u2netp}.onnx").write_bytes(b"not the file")
    with pytest.raises(ModelNotProvisionedError, match="'u2netp-plain' is not provisioned"):
        remover_get(onnx_u2netp)
    MODELS["u2netp-elsewhere"] = dataclasses.replace(MODELS["u2netp"], name="u2netp-elsewhere", family="remote")
    (settings.BG_REMOVE_MODEL_HOME / "u2netp-elsewhere.onnx").write_bytes(model_path("u2netp").read_bytes())
    try:
        with pytest.raises(LookupError, match="family 'remote', which is not one of \\['onnx', 'rembg'\\]"):
            remover_get("u2netp-elsewhere")
    finally:
        del MODELS["u2netp-elsewhere"]


def test_every_catalog_line_names_a_family_that_exists():
    assert {spec.family for spec in MODELS.values()} <= set(FAMILIES)
    for family in FAMILIES.values():
        assert callable(family.load)


def test_the_onnx_family_refuses_options_out_of_range(onnx_u2netp):
    session = remover_get(onnx_u2netp).session
    with pytest.raises(ValueError, match="activation='softmax'"):
        OnnxRemover(session, input_size=(320, 320), mean=(0, 0, 0), std=(1, 1, 1), scale="255",
                    activation="softmax", normalize="none")
