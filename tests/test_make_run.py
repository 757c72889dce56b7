"""`make run` end to end on the embedded defaults: SQLite, local files, filesystem:// broker."""

import io
import os
import shutil
import signal
import subprocess
import time

import pytest
import requests
from PIL import Image

from tests.conftest import FIXTURES, ROOT, free_port, stop_process, wait_for_port

SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AWS_STORAGE_BUCKET_NAME",
                     "DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "CUTOUT_MEDIA_ROOT", "CELERY_QUEUE",
                     "DJANGO_DEBUG")


@pytest.fixture
def make_run(tmp_path, settings):
    """Starts the README's `make run` in its own process group, as a terminal would."""
    demo = tmp_path / "demo"
    (demo / "origin").mkdir(parents=True)
    shutil.copy(FIXTURES / "astronaut.jpg", demo / "origin" / "astronaut.jpg")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(PORT=str(port), CUTOUT_VAR_DIR=str(tmp_path / "var"), ORIGIN_LOCAL_ROOT=str(demo),
               BG_REMOVE_MODEL_HOME=str(settings.BG_REMOVE_MODEL_HOME),
               # The .env make run writes (the secret key, development mode), here and not in the checkout.
               CUTOUT_ENV_FILE=str(tmp_path / ".env"))
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, timeout=120, proc=proc)
        yield proc, f"http://127.0.0.1:{port}", log_path, tmp_path / "var"
    finally:
        stop_process(proc, sig=signal.SIGINT)


def poll(url, headers=None, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.get(url, headers=headers, timeout=30)
        if response.status_code != 202:
            return response
        time.sleep(float(response.headers["Retry-After"]) / 3)
    raise TimeoutError(url)


def test_make_run_serves_a_cutout_and_stops_on_ctrl_c(make_run):
    proc, base, log_path, var = make_run
    url = f"{base}/render/demo/astronaut.jpg?bg-remove=true"

    first = requests.get(url, timeout=30)
    assert first.status_code == 202, first.text
    assert first.headers["Retry-After"] and first.json()["status"] in ("queued", "running")
    assert requests.get(first.json()["status_url"], timeout=10).json()["job"] == first.json()["job"]

    done = poll(url)
    assert done.status_code == 200 and done.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(done.content)).getchannel("A").getextrema() == (0, 255)
    webp = requests.get(url + "&auto=format", headers={"Accept": "image/webp"}, timeout=30)
    assert webp.headers["Content-Type"] == "image/webp" and webp.headers["Vary"] == "Accept"
    assert Image.open(io.BytesIO(webp.content)).mode == "RGBA"

    # Development settings come from the .env it wrote, none from the shell.
    assert (var.parent / ".env").read_text().splitlines()[1:] == ["DJANGO_DEBUG=true"]
    # Embedded defaults: SQLite, the filesystem broker and local storage, all under the var dir.
    assert (var / "db.sqlite3").is_file() and (var / "broker").is_dir()
    assert list((var / "media" / "cutouts").rglob("*.png"))
    log = log_path.read_text(errors="replace")
    assert "Admin login (shown once): admin / " in log
    # Every Procfile process runs, the webhooks worker (its own queues, no model) among them.
    for process in ("web", "worker", "webhooks", "beat"):
        assert f"{process}.1 " in log, process
    assert "webhooks@" in log and "ready." in log.split("webhooks@", 1)[1]
    login = requests.get(f"{base}/admin/login/", timeout=10)
    assert login.status_code == 200 and "Cutout administration" in login.text

    # The worker's metrics reach the web's /metrics (one multiprocess folder).
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    assert 'cutout_bg_remove_jobs_total{state="done"} 1.0' in metrics
    assert 'cutout_bg_remove_inferences_total{model="u2netp"} 1.0' in metrics
    assert "cutout_bg_remove_job_seconds_count 1.0" in metrics
    assert 'cutout_render_seconds_count{cache="processing"}' in metrics
    assert 'cutout_bg_remove_queue{state="done"} 1.0' in metrics
    assert requests.get(f"{base}/readyz", timeout=10).json()["status"] == "ok"

    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal.
    assert proc.wait(timeout=30) is not None
    ps = subprocess.run(["ps", "-o", "pid=", "-g", str(proc.pid)], capture_output=True, text=True)
    assert ps.stdout.strip() == "", f"processes left behind: {ps.stdout}"


def test_the_readmes_batch_commands_run_as_written_against_make_run(make_run):
    """README's "A folder at once": a key, the remove.bg way, then the rendering way with --watch,
    as typed in the checkout against the server `make run` started (its port given by
    CUTOUT_SERVER, which the README names)."""
    proc, base, _, var = make_run
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## A folder at once", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    key_line, removebg_line, render_line = [line.split("   #")[0].strip() for line in block.strip().splitlines()]
    assert render_line.endswith("--watch")
    # The demo source serves what the checkout's demo/origin/ holds.
    for photo in (ROOT / "demo" / "origin").glob("*.jpg"):
        shutil.copy(photo, var.parent / "demo" / "origin" / photo.name)
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(CUTOUT_VAR_DIR=str(var), ORIGIN_LOCAL_ROOT=str(var.parent / "demo"),
               CUTOUT_ENV_FILE=str(var.parent / ".env"), CUTOUT_SERVER=base)
    out = ROOT / "var" / "cutouts"
    shutil.rmtree(out, ignore_errors=True)
    try:
        done = subprocess.run(["bash", "-ec", f"{key_line}\n{removebg_line}"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        photos = sorted(p.stem for p in (ROOT / "demo" / "origin").glob("*.jpg"))
        made = sorted(out.glob("*.webp"))
        assert [p.stem for p in made] == photos
        assert all(Image.open(p).mode == "RGBA" for p in made)
        watching = subprocess.Popen(["bash", "-c", render_line], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while sorted(p.stem for p in (out / "rendered").glob("*.png")) != photos:
                assert watching.poll() is None, watching.stdout.read()
                assert time.monotonic() < deadline, "the render way did not cut out the demo photos"
                time.sleep(1)
        finally:
            stop_process(watching, sig=signal.SIGINT, timeout=30)
        assert watching.returncode == 0, watching.stdout.read()
        assert all(Image.open(p).getchannel("A").getextrema()[0] == 0 for p in (out / "rendered").glob("*.png"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
