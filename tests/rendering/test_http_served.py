"""What a CDN and a browser see from the production server (granian, core/front.py, config/wsgi.py
with rendering/hot.py first): 304s, If-None-Match: *, Accept's q=0, signed paths beyond ASCII."""

import pytest
import requests

from sources.models import Source
from tests.conftest import stop_process
from tests.rendering.test_hot_loop import _serve
from tests.rendering.test_signing import TOKEN, sdk_urls

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

# Sent as the 200's and not the 304's (RFC 9110 §15.4.5); Date is the moment's.
BODY_AND_DATE = {"content-type", "content-length", "date"}


def _fields(response) -> dict:
    return {name.lower(): value for name, value in response.headers.items() if name.lower() not in BODY_AND_DATE}


@pytest.fixture
def server(source, worker_env, tmp_path):
    """On the embedded defaults (no Redis): a repeated hit is answered by the event loop."""
    port, proc = _serve(worker_env, tmp_path / "web.log", REDIS_URL="")
    yield f"http://127.0.0.1:{port}"
    stop_process(proc)


def test_a_304_is_the_200_without_its_body_and_q_0_is_not_accepted(server):
    url = f"{server}/render/acme-photos/astronaut.jpg?w=64&auto=format"
    accept = {"Accept": "image/avif;q=0, image/webp"}
    made, kept = requests.get(url, headers=accept, timeout=30), requests.get(url, headers=accept, timeout=10)
    assert made.status_code == kept.status_code == 200 and kept.content == made.content
    assert kept.headers["Content-Type"] == "image/webp" and kept.headers["Vary"] == "Accept"
    for tag in (kept.headers["ETag"], "*"):
        response = requests.get(url, headers={**accept, "If-None-Match": tag}, timeout=10)
        assert response.status_code == 304 and response.content == b""
        assert "content-type" not in {name.lower() for name in response.headers}
        assert response.headers.get("Content-Length") in (None, kept.headers["Content-Length"])
        assert _fields(response) == _fields(kept)


def test_a_path_in_latin_1_characters_verifies_as_the_sdks_sign_it(server, source, origin_root):
    Source.objects.filter(pk=source.pk).update(require_signature=True, secure_tokens=[TOKEN])
    (origin_root / "photos" / "café ü.png").write_bytes((origin_root / "photos" / "chelsea.png").read_bytes())
    for sdk, url in sdk_urls("café ü.png").items():
        for _ in range(2):  # Made, then the kept response.
            response = requests.get(server + url, timeout=30)
            assert response.status_code == 200 and response.headers["Content-Type"] == "image/png", sdk
    assert requests.get(server + url.replace("w=10", "w=11"), timeout=10).status_code == 403
