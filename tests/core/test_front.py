"""core/front.py's environ: what a request's headers become for the WSGI application."""

from types import SimpleNamespace

from core.front import BodyFront


def environ_for(headers: dict) -> dict:
    front = BodyFront(lambda environ, start_response: [], threads=1, body_timeout=1, max_body_bytes=10,
                      max_buffered_bytes=10)
    scope = SimpleNamespace(server="127.0.0.1:8000", http_version="1.1", client="127.0.0.1:5000", method="GET",
                            path="/render/a/b.jpg", query_string="w=1", scheme="http", authority="example.com")
    return front._environ(scope, headers, b"")


def test_a_header_with_an_underscore_cannot_pose_as_a_proxys_header():
    environ = environ_for({"x-forwarded-proto": "http", "x_forwarded_proto": "https", "x_cutout": "1"})
    assert environ["HTTP_X_FORWARDED_PROTO"] == "http"
    assert not any(key.startswith("HTTP_X_CUTOUT") for key in environ)
    assert environ["HTTP_HOST"] == "example.com"
