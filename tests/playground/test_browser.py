"""The playground in a real browser (Playwright driving Debian's Chromium) on a live server, with a
real Celery worker running the real model: a cutout waited for, parameters toggled, a signed URL
copied and fetched, a 12 MB photo dropped and served, refused files shown as errors."""

import io
import os
from pathlib import Path

import pytest
import requests
from django.conf import settings
from PIL import Image

from accounts.services import account_manager_create, api_key_create
from tests.browser import ARTIFACTS, chromium_launched
from tests.conftest import start_worker, stop_process
from tests.factories import AccountFactory, SourceFactory
from tests.processes import purge_queues

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

MB = 1024 * 1024
# A render waits for the worker's first inference (the model loads once per process).
JOB_WAIT_MS = 180_000


@pytest.fixture
def worker(worker_env, tmp_path):
    purge_queues()
    process = start_worker(worker_env, tmp_path / "worker.log")
    yield process
    stop_process(process.proc)


@pytest.fixture
def page(monkeypatch, live_server):
    with chromium_launched(monkeypatch) as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        yield context.new_page()


def noisy_jpeg(limit: int) -> bytes:
    """A real JPEG photo-sized and just under `limit` bytes: noise at quality 95 (≈1.1 bytes a pixel)."""
    side = int((limit / 1.12) ** 0.5)
    while True:
        image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=95)
        if len(out.getvalue()) <= limit:
            return out.getvalue()
        side -= 40


def source_photos(source) -> Path:
    return Path(settings.ORIGIN_LOCAL_ROOT) / source.local_path


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def drop(page, *, name: str, size: int = 0, head: str = "") -> None:
    """A file dropped on the drop zone, made in the page (a DataTransfer, as a drag from the desktop)."""
    page.evaluate("""([name, size, head]) => {
        const bytes = new Uint8Array(Math.max(size, head.length));
        for (let i = 0; i < head.length; i++) bytes[i] = head.charCodeAt(i);
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true,
                                                                              cancelable: true}));
    }""", [name, size, head])


def test_the_playground_end_to_end(account, source, page, live_server, worker, tmp_path):
    # `source` first: it sets the origin folder the worker is started with.
    SourceFactory(account=account, slug="acme-signed", kind="local", local_path="photos", require_signature=True,
                  secure_tokens=["tok-browser-1"])
    _, key = api_key_create(account=account, scopes=["read", "write"])

    page.goto(f"{live_server.url}/playground/")
    page.fill("#key", key)
    page.click("#sign-in")
    page.wait_for_selector("#who")
    assert key not in page.url and key not in page.content()
    page.wait_for_function("document.getElementById('source').options.length >= 2")
    assert page.input_value("#source") == "acme-photos"
    assert page.input_value("#path") == "astronaut.jpg"

    # bg-remove on: the first answer is a 202; the page shows the job's progress, then the cutout.
    page.check("input[data-param='bg-remove']")
    page.wait_for_function("document.getElementById('url').value.endsWith('astronaut.jpg?bg-remove=true')")
    page.click("#run")
    page.wait_for_selector("#status:has-text('Background removal')", timeout=30_000)
    page.wait_for_selector("#status.ok, #status.error", timeout=JOB_WAIT_MS)
    status = page.inner_text("#status")
    assert "200 image/png" in status and "after waiting for background removal" in status and " s" in status
    assert "model u2netp" in status
    assert page.evaluate("document.getElementById('result').naturalWidth") == 512
    cutout = Image.open(io.BytesIO(requests.get(page.input_value("#url"), timeout=30).content))
    assert cutout.mode == "RGBA" and cutout.getchannel("A").getpixel((0, 0)) < 8
    shot(page, "playground-cutout.png")

    # Parameters on and off change the URL.
    page.check("input[data-param='w']")
    page.fill("input[data-for='w']", "250")
    page.wait_for_function("document.getElementById('url').value.endsWith('?bg-remove=true&w=250')")
    page.check("input[data-param='fm']")
    page.select_option("#fm", "webp")
    page.wait_for_function("document.getElementById('url').value.endsWith('&w=250&fm=webp')")
    page.check("input[data-param='bg-remove-model']")
    page.select_option("#model", "u2net")
    page.wait_for_function("document.getElementById('url').value.includes('bg-remove-model=u2net&')")
    for name in ("bg-remove-model", "fm", "bg-remove"):
        page.uncheck(f"input[data-param='{name}']")
    page.wait_for_function("document.getElementById('url').value.endsWith('astronaut.jpg?w=250')")

    # A signed source: the URL is signed server-side; copied, it renders for anyone.
    page.select_option("#source", "acme-signed")
    page.wait_for_function("/acme-signed\\/astronaut.jpg\\?w=250&s=[0-9a-f]{32}$/.test(document.getElementById('url').value)")
    assert "Signed" in page.inner_text("#url-note")
    page.click("#copy")
    page.wait_for_selector("#copy:has-text('Copied')")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.input_value("#url") and "tok-browser-1" not in copied
    response = requests.get(copied, timeout=30)
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).width == 250
    assert requests.get(copied.replace("w=250", "w=251"), timeout=30).status_code == 403
    page.click("#run")
    page.wait_for_selector("#status.ok:has-text('image/jpeg')", timeout=30_000)
    shot(page, "playground-signed.png")

    # A 12 MB photo chosen (the drop zone's file picker): uploaded, then rendered.
    photo = noisy_jpeg(12 * MB)
    assert 11.5 * MB < len(photo) <= 12 * MB
    (tmp_path / "noise.jpg").write_bytes(photo)
    page.set_input_files("#file", str(tmp_path / "noise.jpg"))
    page.wait_for_selector("#upload-status.ok", timeout=60_000)
    assert "noise.jpg uploaded" in page.inner_text("#upload-status")
    page.wait_for_selector("#status.ok", timeout=60_000)
    assert page.input_value("#url").endswith("?w=250")
    assert "/playground/uploads/acme/" in page.input_value("#url")
    assert page.is_disabled("#copy")
    assert page.evaluate("document.getElementById('result').naturalWidth") == 250
    shot(page, "playground-12mb.png")

    # A dropped photo with bg-remove on: its job runs on the account's uploads, and the page waits.
    page.check("input[data-param='bg-remove']")
    page.set_input_files("#file", str(source_photos(source) / "chelsea.png"))
    page.wait_for_selector("#upload-status.ok:has-text('chelsea.png uploaded')", timeout=60_000)
    page.wait_for_selector("#status.ok, #status.error", timeout=JOB_WAIT_MS)
    status = page.inner_text("#status")
    assert "200 image/png" in status and "after waiting for background removal" in status
    assert page.evaluate("document.getElementById('result').naturalWidth") == 250
    shot(page, "playground-dropped-cutout.png")
    page.uncheck("input[data-param='bg-remove']")

    # Refused files, dropped: a PDF named .jpg (refused by the server, by its content) and 13 MB.
    drop(page, name="invoice.jpg", head="%PDF-1.7\n%\u00e2\u00e3\n1 0 obj <<>> endobj\n%%EOF\n")
    page.wait_for_selector("#upload-status.error", timeout=30_000)
    text = page.inner_text("#upload-status")
    assert "invoice.jpg is refused" in text and "Only JPG and PNG" in text and "415" in text
    shot(page, "playground-refused-pdf.png")
    drop(page, name="huge.jpg", size=13 * MB, head="\xff\xd8\xff")
    page.wait_for_selector("#upload-status.error:has-text('huge.jpg')")
    assert "13.0 MB; the limit is 12.0 MB" in page.inner_text("#upload-status")
    shot(page, "playground-refused-13mb.png")


def test_an_account_manager_uses_the_playground_for_any_account(account, source, page, live_server):
    other = SourceFactory(account=AccountFactory(slug="other", name="Other"), slug="other-photos", kind="local",
                          local_path="photos", require_signature=True, secure_tokens=["tok-other"])
    account_manager_create(username="anna", password="a-long-test-password")
    page.goto(f"{live_server.url}/admin/login/?next=/playground/")
    page.fill("#id_username", "anna")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#who:has-text('anna')")
    # The page's script fills the account menu after the page itself has arrived.
    page.wait_for_function("document.querySelectorAll('#account option').length >= 2")
    assert page.eval_on_selector_all("#account option", "os => os.map(o => o.value)") == ["acme", "other"]
    page.select_option("#account", "other")
    page.wait_for_function("document.getElementById('source').value === 'other-photos'")
    page.wait_for_function("/other-photos\\/astronaut.jpg\\?s=[0-9a-f]{32}$/.test(document.getElementById('url').value)")
    assert requests.get(page.input_value("#url"), timeout=30).status_code == 200
    assert other.secure_tokens[0] not in page.content()
    shot(page, "playground-manager.png")
