"""A job's cost beyond the model: its cutout is still rembg's, and its bookkeeping stays small."""

import io
import json
import os
import sqlite3
import subprocess
import sys
import zlib

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


def rembg_straight(image, *, post_process=False) -> Image.Image:
    """rembg's mask as alpha over the photo's own colours (what cutout() stores: straight alpha,
    not rembg.remove's composite over transparent black, tests/cutouts/test_remover.py)."""
    from rembg import remove
    from rembg.bg import fix_image_orientation

    image = fix_image_orientation(image).convert("RGB")
    mask = remove(image, session=session_get("u2netp"), only_mask=True, post_process_mask=post_process)
    rgba = np.asarray(image.convert("RGBA")).copy()
    rgba[..., 3] = np.asarray(mask)
    rgba[rgba[..., 3] == 0] = 0  # Nothing shows a fully transparent pixel's colour: stored black.
    return Image.fromarray(rgba, "RGBA")


@pytest.mark.parametrize("refinement", ["none", "post-process"])
def test_the_cutout_is_rembgs_mask_on_the_photo_pixel_for_pixel(refinement):
    image = image_decode((FIXTURES / "astronaut.jpg").read_bytes())
    ours, note = cutout(image, model="u2netp", refinement=refinement)
    theirs = rembg_straight(image, post_process=refinement == "post-process")
    assert note == "" and ours.mode == theirs.mode == "RGBA" and ours.size == theirs.size
    assert np.array_equal(pixels(ours), pixels(theirs))
    alpha = pixels(ours)[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255  # A real cutout, not an all-opaque copy.


def test_an_image_not_yet_upright_or_rgb_is_cut_out_as_rembg_would():
    """cutout() converts and orients as rembg.remove does: a sideways or grey photo too."""
    photo = Image.open(FIXTURES / "astronaut.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # Stored sideways.
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=95, exif=exif)
    sideways = Image.open(io.BytesIO(buf.getvalue()))
    ours, _ = cutout(sideways, model="u2netp")
    assert ours.size == (photo.height, photo.width)
    assert np.array_equal(pixels(ours), pixels(rembg_straight(Image.open(io.BytesIO(buf.getvalue())))))
    grey = photo.convert("L")
    assert np.array_equal(pixels(cutout(grey, model="u2netp")[0]), pixels(rembg_straight(grey)))


@pytest.mark.django_db
def test_a_job_stores_its_cutout_losslessly_as_run_length_png(source):
    data = (FIXTURES / "astronaut.jpg").read_bytes()
    # Refinement "none": rembg's own mask, unrefined, is what this compares against.
    job = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp", refinement="none")
    done = jobs.bg_remove_job_process(job_id=job.id)
    with default_storage.open(done.cutout_name) as fh:
        stored = fh.read()
    expected = rembg_straight(Image.open(io.BytesIO(data)))
    assert np.array_equal(pixels(Image.open(io.BytesIO(stored))), pixels(expected))
    # The encoding chosen for speed: run-length deflate, not zlib's default strategy.
    rle = io.BytesIO()
    expected.save(rle, "PNG", compress_level=6, compress_type=zlib.Z_RLE)
    assert stored == rle.getvalue()


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
