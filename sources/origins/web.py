"""Web-folder origin: base URL + path over HTTP(S), through the network-safe fetcher."""

from urllib.parse import quote

from sources.origins.base import Origin
from sources.origins.net import fetch_url


class WebFolderOrigin(Origin):
    def __init__(self, base_url: str):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"

    def url_for(self, path: str) -> str:
        # The query string is never forwarded; the path is re-encoded for the wire.
        return self.base_url + quote(path, safe="/")

    def fetch(self, path, *, max_bytes):
        return fetch_url(self.url_for(path), max_bytes=max_bytes)
