"""The admin as account managers use it, in a real browser (Playwright driving Debian's Chromium)."""

import shutil
from pathlib import Path

import pytest
import requests

from accounts.models import Account
from accounts.services import account_manager_create
from tests.conftest import ROOT, require

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # still synchronous, so Django's async-safety guard is lifted for this test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    require("chromium (apt-get install chromium)", Path(CHROMIUM).exists() and shutil.which("chromium") is not None)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        yield page
        browser.close()
        # Inside Playwright's event loop, Django keeps separate connections (asgiref's context-local
        # storage): close them here, or they would outlive the test database.
        from django.db import connections

        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_manager_toggles_bg_remove_in_the_browser(browser_page, live_server, source):
    page = browser_page
    Account.objects.filter(pk=source.account.pk).update(bg_remove_enabled=False)
    account_manager_create(username="anna", password="a-long-test-password")
    render = f"{live_server.url}/render/{source.slug}/astronaut.jpg?bg-remove=true"
    assert requests.get(render, timeout=10).status_code == 403

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "anna")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

    # Find the account by the name of its source, as the issue asks.
    page.goto(f"{live_server.url}/admin/accounts/account/?q={source.slug}")
    page.click(f"text={source.account.name}")
    page.check("#id_bg_remove_enabled")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert requests.get(render, timeout=10).status_code == 202

    page.goto(f"{live_server.url}/admin/accounts/account/{source.account.pk}/change/")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "account-page.png"), full_page=True)
    page.uncheck("#id_bg_remove_enabled")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert requests.get(render, timeout=10).status_code == 403

    page.goto(f"{live_server.url}/admin/accounts/account/{source.account.pk}/history/")
    history = page.inner_text("#change-history")
    assert "anna" in history and "True" in history and "False" in history

    for url in ["/admin/auth/user/", "/admin/auth/group/"]:
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 403
    page.goto(f"{live_server.url}/admin/")
    assert "Users" not in page.inner_text("#content-main")
