"""The client's calls against real HTTP servers: signatures the server's own check accepts, retries
that honour Retry-After, errors in both of the server's shapes, and nothing written unless whole."""

import json
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import urllib3
from werkzeug import Response

from cutout_client import calls
from cutout_client.calls import CallError, Interrupted, RemoveBgClient, RenderClient, Retry
from cutout_client.files import Item
from rendering.signing import SignatureError, raw_path_candidates, signature_check
from tests.conftest import free_port

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100


def render_client(server: str, *, token=None, params=(), retries=3, stop=None, job_timeout=30.0) -> RenderClient:
    return RenderClient(source="shop", params=list(params), token=token, job_timeout=job_timeout, server=server,
                        http=urllib3.PoolManager(), retry=Retry(retries=retries, stop=stop or threading.Event(),
                                                                base=0.05, cap=0.2),
                        timeout=10.0, extension="png")


def item(tmp_path: Path, rel="a.jpg") -> Item:
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 a photo")
    return Item(rel=rel, path=path, size=path.stat().st_size, mtime_ns=path.stat().st_mtime_ns, out_rel="a.png")


@pytest.mark.parametrize("rel", ["plain.jpg", "dir/café ü.png", "日本/a+b&c;d=e@f,g.jpg"])
def test_signed_urls_pass_the_servers_own_check(rel):
    client = render_client("http://x", token="tok", params=[("w", "100"), ("bg", "ff0000"), ("mark", "a.png?w=2")])
    split = urlsplit(client.url_for(rel))
    assert split.query.endswith("&s=" + split.query.rpartition("s=")[2]) and split.query.startswith("bg-remove=true&")
    # What the server has: the decoded path (Django's PATH_INFO) and the raw query.
    meta = {"PATH_INFO": unquote(split.path)}
    assert unquote(split.path) == f"/render/shop/{rel}"
    signature_check(tokens=["other", "tok"], paths=raw_path_candidates(meta), raw_query=split.query)
    with pytest.raises(SignatureError):
        signature_check(tokens=["not-tok"], paths=raw_path_candidates(meta), raw_query=split.query)


def test_unsigned_urls_carry_no_signature():
    client = render_client("http://x", params=[("fm", "png")])
    assert client.url_for("a b.jpg") == "http://x/render/shop/a%20b.jpg?bg-remove=true&fm=png"
    client.prefix = "in/a folder"  # --prefix: INPUT is that folder of the source.
    assert client.url_for("b.jpg") == "http://x/render/shop/in/a%20folder/b.jpg?bg-remove=true&fm=png"


def test_a_503_is_tried_again_after_its_retry_after(httpserver, tmp_path):
    httpserver.expect_ordered_request("/render/shop/a.jpg").respond_with_json(
        {"error": {"code": "queue_unavailable", "message": "later"}}, status=503, headers={"Retry-After": "1"})
    httpserver.expect_ordered_request("/render/shop/a.jpg").respond_with_json(
        {"status": "queued"}, status=202, headers={"Retry-After": "1"})
    httpserver.expect_ordered_request("/render/shop/a.jpg").respond_with_data(PNG, content_type="image/png")
    started = time.monotonic()
    outcome = render_client(httpserver.url_for("")).cut(item(tmp_path), tmp_path / "out" / "a.png")
    assert time.monotonic() - started >= 2.0  # Both Retry-Afters waited, not the 0.05 s backoff.
    assert outcome.retries == 1 and (tmp_path / "out" / "a.png").read_bytes() == PNG
    assert not list((tmp_path / "out").glob(".*"))


def test_retries_run_out_with_the_servers_reason(httpserver, tmp_path):
    body = {"errors": [{"title": "Too many calls are waiting", "code": "too_many_waiting"}]}
    httpserver.expect_request("/v1.0/removebg", method="POST").respond_with_json(body, status=429,
                                                                                 headers={"Retry-After": "0"})
    client = RemoveBgClient(key="k", fields=[("size", "preview")], max_bytes=100, server=httpserver.url_for(""),
                            http=urllib3.PoolManager(), retry=Retry(retries=2, stop=threading.Event()), timeout=10,
                            extension="png")
    with pytest.raises(CallError) as raised:
        client.cut(item(tmp_path), tmp_path / "a.png")
    assert str(raised.value) == "429 too_many_waiting: Too many calls are waiting (after 2 retries)"
    assert len(httpserver.log) == 3
    sent = httpserver.log[0][0]
    assert sent.headers["X-Api-Key"] == "k" and sent.form["size"] == "preview"
    assert sent.files["image_file"].read() == b"\xff\xd8 a photo" and sent.files["image_file"].filename == "a.jpg"
    assert not (tmp_path / "a.png").exists()


def test_a_file_over_max_bytes_is_not_sent(httpserver, tmp_path):
    client = RemoveBgClient(key="k", fields=[], max_bytes=5, server=httpserver.url_for(""), http=urllib3.PoolManager(),
                            retry=Retry(retries=0, stop=threading.Event()), timeout=10, extension="png")
    with pytest.raises(CallError, match="over --max-bytes"):
        client.cut(item(tmp_path), tmp_path / "a.png")
    assert not httpserver.log


def test_a_lost_connection_is_tried_again_then_reported(tmp_path):
    client = render_client(f"http://127.0.0.1:{free_port()}", retries=2)
    with pytest.raises(CallError) as raised:
        client.cut(item(tmp_path), tmp_path / "a.png")
    assert raised.value.status is None and raised.value.code == "connection_failed"
    assert raised.value.message.endswith("(after 2 retries)")


def test_an_answer_of_another_type_is_not_written(httpserver, tmp_path):
    httpserver.expect_request("/render/shop/a.jpg").respond_with_data(b"\xff\xd8jpeg", content_type="image/jpeg")
    with pytest.raises(CallError, match="answered image/jpeg, not image/png"):
        render_client(httpserver.url_for("")).cut(item(tmp_path), tmp_path / "a.png")
    assert list(tmp_path.glob("*.png")) == [] and list(tmp_path.glob(".*")) == []


def test_an_answer_over_the_output_cap_is_not_written(httpserver, tmp_path, monkeypatch):
    monkeypatch.setattr(calls, "MAX_OUTPUT_BYTES", 100)
    httpserver.expect_request("/render/shop/a.jpg").respond_with_data(PNG, content_type="image/png")
    with pytest.raises(CallError, match="over 100 bytes"):
        render_client(httpserver.url_for("")).cut(item(tmp_path), tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == [tmp_path / "a.jpg"]


def test_a_body_cut_short_leaves_no_output(tmp_path, httpserver):
    def short(_request):
        return Response(iter([PNG[:20]]), headers={"Content-Type": "image/png", "Content-Length": str(len(PNG))})

    httpserver.expect_request("/render/shop/a.jpg").respond_with_handler(short)
    with pytest.raises(Exception):
        render_client(httpserver.url_for("")).cut(item(tmp_path), tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == [tmp_path / "a.jpg"]


def test_a_stop_ends_the_wait_for_a_job(httpserver, tmp_path):
    httpserver.expect_request("/render/shop/a.jpg").respond_with_json({"status": "queued"}, status=202,
                                                                      headers={"Retry-After": "60"})
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        render_client(httpserver.url_for(""), stop=stop).cut(item(tmp_path), tmp_path / "a.png")
    assert time.monotonic() - started < 5


def test_a_job_past_its_timeout_is_a_failure_naming_it(httpserver, tmp_path):
    httpserver.expect_request("/render/shop/a.jpg").respond_with_json({"status": "queued"}, status=202,
                                                                      headers={"Retry-After": "2"})
    with pytest.raises(CallError) as raised:
        render_client(httpserver.url_for(""), job_timeout=1.0).cut(item(tmp_path), tmp_path / "a.png")
    assert raised.value.status == 202 and "--job-timeout" in raised.value.message


def test_errors_in_our_shape_and_in_plain_text(httpserver, tmp_path):
    httpserver.expect_ordered_request("/render/shop/a.jpg").respond_with_data(
        json.dumps({"error": {"code": "bg_remove_not_enabled", "message": "Not for this source."}}), status=403,
        content_type="application/json")
    httpserver.expect_ordered_request("/render/shop/a.jpg").respond_with_data("Bad gateway", status=502)
    client = render_client(httpserver.url_for(""))
    for expected in ("403 bg_remove_not_enabled: Not for this source.", "502 http_error: Bad gateway"):
        with pytest.raises(CallError) as raised:
            client.cut(item(tmp_path), tmp_path / "a.png")
        assert str(raised.value) == expected
