"""Debian's Chromium driven by Playwright, the one way every browser test launches it."""

import contextlib
import shutil
from pathlib import Path

from tests.conftest import ROOT, require

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@contextlib.contextmanager
def chromium_launched(monkeypatch, extra_args=()):
    """A launched browser, closed after; the test's database connections closed with it."""
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # still synchronous, so Django's async-safety guard is lifted for this test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    require("chromium (apt-get install chromium)", Path(CHROMIUM).exists() and shutil.which("chromium") is not None)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()
            # Inside Playwright's event loop, Django keeps separate connections (asgiref's
            # context-local storage): close them here, or they would outlive the test database.
            from django.db import connections

            connections.close_all()
