"""A job's cost beyond the model: its cutout is still rembg's, and its bookkeeping stays small."""

import io
import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from cutouts import services as jobs
from cutouts.models import BgRemoveJob
from cutouts.remover import cutout, session_get
from imaging.decode import image_decode
from tests.conftest import FIXTURES, ROOT

EMBEDDED_DB_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.db import connection
with connection.cursor() as cursor:
    journal = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = cursor.execute("PRAGMA synchronous").fetchone()[0]
db = settings.DATABASES["default"]
print(json.dumps({"journal": journal, "synchronous": synchronous, "options": db["OPTIONS"],
                  "conn_max_age": db["CONN_MAX_AGE"], "name": str(db["NAME"])}))
"""


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def test_the_embedded_sqlite_database_runs_in_wal_mode(tmp_path):
    """What `make run` gets with no DATABASE_URL: WAL (web reads while the worker writes),
    synchronous=NORMAL (no fsync per commit), kept connections, and still the lock wait."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(CUTOUT_VAR_DIR=str(tmp_path), DJANGO_DEBUG="true", DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run([sys.executable, "-c", EMBEDDED_DB_PROBE], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["journal"] == "wal"
    assert values["synchronous"] == 1  # NORMAL
    assert values["options"]["timeout"] == 20 and values["options"]["transaction_mode"] == "IMMEDIATE"
    assert values["conn_max_age"] > 0
    # WAL is a property of the file: every other process's connection (web, beat) is in it too.
    with sqlite3.connect(values["name"]) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def rembg_mask(image) -> np.ndarray:
    """Bare rembg's mask of `image`, which remove() orients by its EXIF first."""
    from rembg import remove

    return np.asarray(remove(image, session=session_get("u2netp"), only_mask=True), dtype=np.int16)


def iou(ours: np.ndarray, theirs: np.ndarray) -> float:
    ours, theirs = ours >= 128, theirs >= 128
    return (ours & theirs).sum() / (ours | theirs).sum()


def test_an_image_not_yet_upright_or_rgb_is_cut_out_as_rembg_would():
    """cutout() converts and orients as rembg.remove does: a sideways or grey photo too (its
    mask within IoU 0.98 of rembg's, tests/cutouts/test_remover.py)."""
    photo = Image.open(FIXTURES / "astronaut.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # Stored sideways.
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=95, exif=exif)
    ours, _ = cutout(Image.open(io.BytesIO(buf.getvalue())), model="u2netp")
    assert ours.size == (photo.height, photo.width)
    upright = image_decode(buf.getvalue())  # Turned by its EXIF.
    assert iou(pixels(ours)[..., 3], rembg_mask(Image.open(io.BytesIO(buf.getvalue())))) >= 0.98
    shown = pixels(ours)[..., 3] > 0
    assert np.array_equal(pixels(ours)[shown][:, :3], pixels(upright)[shown])
    grey = photo.convert("L")
    ours, _ = cutout(grey, model="u2netp")
    assert iou(pixels(ours)[..., 3], rembg_mask(grey)) >= 0.98
    shown = pixels(ours)[..., 3] > 0
    assert np.array_equal(pixels(ours)[shown][:, :3], pixels(grey.convert("RGB"))[shown])


@pytest.mark.django_db
def test_a_job_stores_its_cutout_losslessly_in_a_file_near_rembgs_size(source):
    data = (FIXTURES / "astronaut.jpg").read_bytes()
    # Refinement "none": rembg's own mask, unrefined, is what this compares against.
    job = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp", refinement="none")
    done = jobs.bg_remove_job_process(job_id=job.id)
    with default_storage.open(done.cutout_name) as fh:
        stored = fh.read()
    expected, _ = cutout(image_decode(data), model="u2netp")
    decoded = Image.open(io.BytesIO(stored))
    assert decoded.format == "PNG" and decoded.mode == "RGBA"
    assert np.array_equal(pixels(decoded), pixels(expected))
    # Encoded for time (cutouts/encoding.py), at a size close to rembg's own file of it (its
    # composite over transparent black, Pillow's default PNG): measured 1.09 with ISA-L, 1.12 with zlib.
    from rembg import remove

    assert len(stored) <= 1.15 * len(remove(data, session=session_get("u2netp")))


@pytest.mark.django_db
def test_a_job_costs_six_statements_and_returns_what_the_row_holds(source, django_assert_num_queries):
    """The message's job (crash recovery), the fair pick, the claim (UPDATE, SELECT), the inference
    count before the model runs, the end: no read-back. (Four before the fair pick of issue 11.)"""
    job = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp")
    with django_assert_num_queries(6):
        done = jobs.bg_remove_job_process(job_id=job.id)
    row = BgRemoveJob.objects.get(pk=job.pk)
    fields = [f.attname for f in BgRemoveJob._meta.concrete_fields]
    assert {f: getattr(done, f) for f in fields} == {f: getattr(row, f) for f in fields}
    assert (row.status, row.inferences, row.attempts) == ("done", 1, 1)
