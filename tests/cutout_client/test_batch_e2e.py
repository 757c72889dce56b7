"""`cutout` end to end: the console script's code run as its own process against a running server
(granian web, a Celery worker with the real u2netp model, Postgres, Redis), on 50 generated images
with bad ones among them; killed mid-way and resumed; watching a folder."""

import io
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from accounts.services import api_key_create
from cutouts.models import BgRemoveJob
from tests.conftest import ROOT, free_port, start_worker, stop_process, wait_for_port, web_command
from tests.processes import purge_queues

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

MAX_PIXELS = 1_000_000  # The server's ORIGIN_MAX_PIXELS here, so an over-limit image stays small.
GOOD = 46


def shape_image(n: int, fmt: str) -> bytes:
    """A small picture no other index makes: a shape of one colour on a background of another."""
    rng = random.Random(n)
    w, h = rng.choice([(160, 120), (128, 128), (120, 160)])
    image = Image.new("RGB", (w, h), tuple(rng.randrange(150, 256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    box = (w // 4 + rng.randrange(-8, 8), h // 5, 3 * w // 4, 4 * h // 5 + rng.randrange(-8, 8))
    colour = tuple(rng.randrange(0, 110) for _ in range(3))
    (draw.ellipse if n % 2 else draw.rectangle)(box, fill=colour)
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


def make_folder(folder: Path) -> dict[str, str]:
    """46 good images (JPG and PNG, some in a subfolder) and 4 bad ones (a truncated JPEG, a text
    file named .jpg, one over the server's pixel limit, an empty PNG); and two files that are not
    sent. Returns the bad and skipped names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sub").mkdir()
    for n in range(GOOD):
        name = f"{'sub/' if n % 5 == 0 else ''}img-{n:02d}.{'png' if n % 3 == 0 else 'jpg'}"
        (folder / name).write_bytes(shape_image(n, "PNG" if name.endswith("png") else "JPEG"))
    whole = shape_image(100, "JPEG")
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "notes.jpg").write_text("this is not an image\n")
    big = io.BytesIO()
    Image.new("RGB", (1200, 1000), (200, 30, 30)).save(big, "PNG")
    (folder / "huge.png").write_bytes(big.getvalue())
    (folder / "empty.png").write_bytes(b"")
    (folder / "readme.txt").write_text("not sent")
    shape = io.BytesIO()
    Image.new("RGB", (40, 40)).save(shape, "GIF")
    (folder / "anim.gif").write_bytes(shape.getvalue())
    return {"bad": {"truncated.jpg", "notes.jpg", "huge.png", "empty.png"}, "skipped": {"readme.txt", "anim.gif"}}


@pytest.fixture
def server(origin_root, account, worker_env, tmp_path):
    """The web server as platform/Procfile runs it and a real worker, on this test's database."""
    env = {**worker_env, "ORIGIN_MAX_PIXELS": str(MAX_PIXELS), "REMOVEBG_DEFAULT_CREDITS": "1000",
           "RENDER_RATE_LIMIT": "100000/m", "BG_REMOVE_RATE_LIMIT": "10000/m", "LOG_FLUSH_SECONDS": "0"}
    purge_queues()
    port = free_port()
    web = subprocess.Popen(web_command(port, workers=1), cwd=ROOT, env={**os.environ, **env},
                           stdout=(tmp_path / "web.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        wait_for_port(port, proc=web)
        worker = start_worker(env, tmp_path / "worker.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        if worker is not None:
            stop_process(worker.proc)
        stop_process(web)


class Cutout:
    """`python -m cutout_client …` (what the `cutout` script runs), its stdout read line by line."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen([sys.executable, "-m", "cutout_client", *map(str, args), "--no-progress"],
                                     cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.err = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def ok(self) -> list[str]:
        return [line.split()[1] for line in list(self.lines) if line.startswith("ok ")]

    def wait_for(self, predicate, timeout=120):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc.poll() is None or predicate(), f"exited {self.proc.returncode}: {self.output()}"
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.05)

    def finish(self, timeout=300) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        self.err = self.proc.stderr.read()
        return code

    def output(self) -> str:
        return "\n".join(self.lines) + "\n--- stderr ---\n" + (self.err or "")

    def summary(self) -> dict:
        text = "\n".join(self.lines)
        head = re.search(r"cutout: (\d+) cut out, (\d+) failed, (\d+) skipped, (\d+) already done; .* (\d+) retries",
                         text)
        assert head, self.output()
        failed = dict(re.findall(r"^  (\S+): (\S+ \S+: .*)$", text.split("Failed (")[1].split("Skipped (")[0],
                                 re.MULTILINE)) if "Failed (" in text else {}
        return {"done": int(head[1]), "failed": int(head[2]), "skipped": int(head[3]), "resumed": int(head[4]),
                "retries": int(head[5]), "failures": failed}


def cutout_checked(path: Path) -> Image.Image:
    """A real PNG with an alpha channel that removed something (the background) and kept something."""
    image = Image.open(path)
    assert image.format == "PNG" and image.mode == "RGBA", (path, image.format, image.mode)
    low, high = image.getchannel("A").getextrema()
    assert low < 16 and high > 240, (path, low, high)
    return image


def outputs(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*.png")}


def test_a_folder_through_the_removebg_api_killed_twice_and_resumed(server, account, tmp_path):
    _, key = api_key_create(account=account, scopes=["removebg"])
    names = make_folder(tmp_path / "in")
    out = tmp_path / "out"
    args = ("removebg", tmp_path / "in", out, "--server", server, "-j", "4")
    env = {"CUTOUT_API_KEY": key}

    # 1. Ctrl-C after a few files: a clean stop, files in flight finished, 130.
    first = Cutout(*args, env=env)
    first.wait_for(lambda: len(first.ok()) >= 5)
    first.proc.send_signal(signal.SIGINT)
    assert first.finish(timeout=120) == 130, first.output()
    assert "stopping (SIGINT)" in first.err and "Interrupted:" in "\n".join(first.lines)
    after_first = outputs(out)
    assert set(after_first) >= {f.replace(".jpg", ".png") for f in first.ok()}
    assert len(after_first) < GOOD

    # 2. Killed outright after a few more: no summary, maybe a partial file left behind.
    second = Cutout(*args, env=env)
    second.wait_for(lambda: len(second.ok()) >= 8)
    second.proc.kill()
    second.finish()
    assert not set(second.ok()) & set(first.ok()), "a file finished by the first run was made again"
    after_second = outputs(out)
    for name, mtime in after_first.items():
        assert after_second[name] == mtime, f"{name} was rewritten"
    # (An output renamed into place just before the kill, and not yet recorded, is made again.)
    recorded = {name.replace(".jpg", ".png") for name in first.ok() + second.ok()}

    # 3. The rest, to the end.
    third = Cutout(*args, env=env)
    code = third.finish()
    summary = third.summary()
    assert code == 1, third.output()  # Some failed.
    done_before = len(first.ok()) + len(second.ok())
    assert summary["resumed"] >= done_before and summary["done"] + summary["resumed"] == GOOD, third.output()
    assert not set(third.ok()) & (set(first.ok()) | set(second.ok())), third.output()
    final = outputs(out)
    assert len(final) == GOOD and not list(out.rglob("*.partial")), sorted(out.rglob("*"))
    for name in recorded:
        assert final[name] == after_second[name], f"{name} was rewritten"
    for name in final:
        cutout_checked(out / name)
    assert (out / "sub" / "img-00.png").exists()

    # Every bad file listed with the server's status and message; the others as skipped.
    assert set(summary["failures"]) == names["bad"], third.output()
    for name, reason in summary["failures"].items():
        assert re.match(r"400 \w+: \S", reason), (name, reason)
    assert "resolution_too_high" in summary["failures"]["huge.png"]
    assert summary["skipped"] == 2 and all(f"  {n}: not a JPG or PNG" in "\n".join(third.lines)
                                           for n in names["skipped"])
    # One job per image, each run once however often its file was sent.
    assert BgRemoveJob.objects.filter(status="done").count() == GOOD
    assert set(BgRemoveJob.objects.filter(status="done").values_list("inferences", flat=True)) == {1}
    # Four calls at once on one web process with two waiting places: 429s, waited out.
    assert summary["retries"] + sum(" retr" in line for line in first.lines + second.lines) > 0

    # 4. Once more: nothing to do but the bad ones.
    again = Cutout(*args, env=env)
    assert again.finish() == 1
    assert again.summary()["resumed"] == GOOD and again.summary()["done"] == 0

    # The output options reach the API: WebP on a colour, cropped to the subject, the largest size.
    few = tmp_path / "few"
    few.mkdir()
    (few / "img-01.jpg").write_bytes((tmp_path / "in" / "img-01.jpg").read_bytes())
    styled = Cutout("removebg", few, tmp_path / "styled", "--server", server, "--format", "webp", "--bg-color",
                    "00ff00", "--crop", "--size", "full", env=env)
    assert styled.finish() == 0, styled.output()
    image = Image.open(tmp_path / "styled" / "img-01.webp")
    source = Image.open(few / "img-01.jpg")
    assert image.format == "WEBP" and image.mode == "RGB"
    assert image.width < source.width and image.height < source.height  # Cropped.
    assert image.getpixel((0, 0)) == pytest.approx((0, 255, 0), abs=24)


def test_a_source_folder_through_signed_rendering_urls_while_watching(server, source, origin_root, tmp_path):
    source.require_signature, source.secure_tokens = True, ["the-token"]
    source.save()
    photos = origin_root / "photos"
    for n in range(6):
        (photos / f"w-{n}.png").write_bytes(shape_image(200 + n, "PNG"))
    out = tmp_path / "out"
    watch = Cutout("render", photos, out, "--server", server, "--source", source.slug, "-j", "3", "--watch",
                   "--interval", "0.5", "--settle", "0.3", "--width", "100",
                   env={"CUTOUT_SIGN_TOKEN": "the-token"})
    try:
        # The two photographs of the fixture and the six new files.
        watch.wait_for(lambda: len(watch.ok()) == 8)
        (photos / "later.jpg").write_bytes(shape_image(300, "JPEG"))
        watch.wait_for(lambda: "later.jpg" in watch.ok())
        # A changed file is made again.
        before = (out / "w-0.png").stat().st_mtime_ns
        (photos / "w-0.png").write_bytes(shape_image(400, "PNG"))
        watch.wait_for(lambda: watch.ok().count("w-0.png") == 2)
        assert (out / "w-0.png").stat().st_mtime_ns != before
        watch.proc.send_signal(signal.SIGTERM)
        assert watch.finish(timeout=60) == 0, watch.output()
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
    summary = watch.summary()
    assert summary["done"] == 10 and summary["failed"] == 0, watch.output()
    for name in ("w-1.png", "later.png", "astronaut.png"):
        image = cutout_checked(out / name)
        assert image.width <= 100
    assert "stopping (SIGTERM)" in watch.err

    # A wrong token: each file refused with the server's reason, exit status 1.
    wrong = Cutout("render", photos, tmp_path / "out2", "--server", server, "--source", source.slug,
                   "--token", "not-it")
    assert wrong.finish() == 1
    failures = wrong.summary()["failures"]
    assert len(failures) == 9 and all(r.startswith("403 bad_signature: ") for r in failures.values()), failures
