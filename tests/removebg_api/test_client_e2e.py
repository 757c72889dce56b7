"""remove.bg's own clients (PyPI `removebg`, npm `remove.bg`) pointed at our server: a real HTTP
server, a real Celery worker running the real model, the call waiting for its job as remove.bg's does."""

import base64
import io
import json
import subprocess
from pathlib import Path

import pytest
import removebg.removebg as removebg_client
from PIL import Image

from accounts.services import api_key_create
from cutouts.models import BgRemoveJob
from removebg_api.models import Call, CreditAccount
from sources.models import Upload
from tests.conftest import start_worker, stop_process
from tests.processes import purge_queues

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(worker_env, tmp_path):
    purge_queues()
    process = start_worker(worker_env, tmp_path / "worker.log")
    yield process
    stop_process(process.proc)


@pytest.fixture
def client_at(live_server, account, monkeypatch, tmp_path):
    """The client library with its one setting, the endpoint, set to our server (the only change
    an application makes besides the key)."""
    monkeypatch.setattr(removebg_client, "API_ENDPOINT", f"{live_server.url}/v1.0/removebg")
    _, key = api_key_create(account=account, scopes=["removebg"])
    return removebg_client.RemoveBg(key, str(tmp_path / "removebg-errors.log"))


def cut_out(path) -> Image.Image:
    image = Image.open(path)
    assert image.format == "PNG" and image.mode == "RGBA"
    return image


def test_the_client_removes_a_background_end_to_end(client_at, worker, tmp_path, photo_jpg, settings):
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(photo_jpg)
    client_at.remove_background_from_img_file(str(photo))  # size="regular": remove.bg's preview.
    image = cut_out(f"{photo}_no_bg.png")
    assert image.size == (500, 500)
    alpha = image.getchannel("A")
    assert alpha.getpixel((0, 0)) < 8 and alpha.getpixel((250, 150)) > 247  # Background gone, face kept.

    # The same image again, as base64: the same upload and job, no second inference.
    out = tmp_path / "again.png"
    client_at.remove_background_from_base64_img(base64.b64encode(photo_jpg).decode(), new_file_name=str(out))
    assert cut_out(out).tobytes() == image.tobytes()
    job = BgRemoveJob.objects.get()
    assert (job.status, job.inferences) == ("done", 1)
    assert Upload.objects.count() == 1 and Call.objects.count() == 2
    assert f"bg-remove job {job.id} done" in worker.log()


def test_the_client_with_an_image_url_and_a_colour(client_at, worker, tmp_path, httpserver, settings, photo_png):
    settings.ORIGIN_ALLOW_LOOPBACK = True  # The image is served on this machine.
    httpserver.expect_request("/chelsea.png").respond_with_data(photo_png, content_type="image/png")
    out = tmp_path / "cat.png"
    client_at.remove_background_from_img_url(httpserver.url_for("/chelsea.png"), new_file_name=str(out),
                                             bg_color="00ff00")
    image = Image.open(out)
    # An opaque colour: remove.bg's format=auto answers JPEG (the client names the file .png).
    assert image.format == "JPEG" and image.size == (451, 300)
    assert image.getpixel((1, 1)) == pytest.approx((0, 255, 0), abs=8)


def test_a_call_past_the_wait_answers_429_and_the_next_finds_the_result(live_server, account, worker_env,
                                                                         tmp_path, photo_jpg, settings):
    import requests

    settings.REMOVEBG_WAIT_SECONDS = 0.5
    _, key = api_key_create(account=account, scopes=["removebg"])
    url = f"{live_server.url}/v1.0/removebg"
    first = requests.post(url, files={"image_file": io.BytesIO(photo_jpg)}, headers={"X-Api-Key": key}, timeout=30)
    assert first.status_code == 429 and int(first.headers["Retry-After"]) >= 1
    purge_queues()  # A worker started now picks the job from the database, not a stale message.
    settings.REMOVEBG_WAIT_SECONDS = 60
    job = BgRemoveJob.objects.get()
    from cutouts.queueing import bg_remove_job_enqueue

    bg_remove_job_enqueue(job)
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        second = requests.post(url, files={"image_file": io.BytesIO(photo_jpg)}, headers={"X-Api-Key": key},
                               timeout=90)
    finally:
        stop_process(worker.proc)
    assert second.status_code == 200 and second.headers["X-Width"] == "500"
    assert BgRemoveJob.objects.get().inferences == 1


def test_concurrent_first_calls_for_one_image_make_one_upload_and_one_job(live_server, account, photo_jpg,
                                                                          settings):
    import threading

    import requests

    settings.REMOVEBG_WAIT_SECONDS = 0
    settings.REMOVEBG_MAX_WAITING = 100
    _, key = api_key_create(account=account, scopes=["removebg"])
    url = f"{live_server.url}/v1.0/removebg"
    barrier = threading.Barrier(12)
    answers = []

    def first_call():
        barrier.wait()
        answers.append(requests.post(url, files={"image_file": io.BytesIO(photo_jpg)}, headers={"X-Api-Key": key},
                                     timeout=30))

    threads = [threading.Thread(target=first_call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.json()["errors"][0]["code"] for a in answers} == {"result_pending"}, [a.text for a in answers]
    assert BgRemoveJob.objects.count() == 1 and Upload.objects.count() == 1
    purge_queues()


def npm_call(folder, base, key, mode, image, output, **options):
    script = Path(__file__).with_name("npm_client.cjs")
    result = subprocess.run(["node", str(script), str(folder), base, key, mode, str(image), str(output),
                             json.dumps(options)], capture_output=True, text=True, timeout=120)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_npm_client_removes_a_background_end_to_end(npm_client_dir, live_server, account, worker, tmp_path,
                                                        photo_jpg):
    CreditAccount.objects.create(account=account, credits=2, free_calls=50)
    _, key = api_key_create(account=account, scopes=["removebg"])
    endpoint = live_server.url
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(photo_jpg)
    answer = npm_call(npm_client_dir, endpoint, key, "file", photo, tmp_path / "a.png", size="regular")
    assert answer["ok"], answer
    # The client reads remove.bg's headers into its result.
    result = answer["result"]
    assert (result["resultWidth"], result["resultHeight"], result["creditsCharged"]) == ("500", "500", "0")
    assert result["detectedType"] == "other" and int(result["rateLimitRemaining"]) >= 0
    image = Image.open(tmp_path / "a.png")
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (500, 500)

    # As base64 in JSON, cropped and scaled: the same job; the options reach the pipeline.
    answer = npm_call(npm_client_dir, endpoint, key, "base64", photo, tmp_path / "b.png", crop=True,
                      crop_margin="10px", size="full")
    assert answer["ok"], answer
    cropped = Image.open(tmp_path / "b.png")
    # The subject (the whole width, not the whole height) with 10 px of transparent margin.
    assert cropped.width <= 512 + 20 and cropped.height < 512 + 20
    assert cropped.getchannel("A").crop((0, 0, cropped.width, 10)).getextrema() == (0, 0)
    assert BgRemoveJob.objects.get().inferences == 1

    # remove.bg's errors reach the client as remove.bg's.
    answer = npm_call(npm_client_dir, endpoint, "wrong", "file", photo, tmp_path / "c.png")
    assert not answer["ok"] and answer["errors"][0]["title"] == "API Key invalid"
