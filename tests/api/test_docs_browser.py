"""The API docs in a real browser, offline: Swagger UI and ReDoc from our static files only, and
"Try it out" with an account manager's admin session (Playwright driving Debian's Chromium)."""

import json
from urllib.parse import urlsplit

import pytest

from accounts.models import ApiKey
from accounts.services import account_manager_create
from tests.browser import ARTIFACTS, chromium_launched

# The docs as a deployment serves them, under a public name rather than localhost (Swagger UI
# treats localhost specially: its validator badge, fetched from swagger.io, is skipped there).
HOST = "docs.cutout.test"


@pytest.fixture
def docs_page(monkeypatch, settings, live_server):
    """A Chromium page and the live server's address under HOST (Chromium maps the name to it)."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    port = urlsplit(live_server.url).port
    with chromium_launched(monkeypatch, [f"--host-resolver-rules=MAP {HOST} 127.0.0.1"]) as browser:
        yield browser.new_page(viewport={"width": 1280, "height": 1000}), f"http://{HOST}:{port}"


def offline(page, base_url):
    """Every request to anything but the test server is aborted and recorded: the page must not need one."""
    refused = []

    def route(route):
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    return refused


def admin_login(page, base_url, username, password):
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


@pytest.mark.django_db(transaction=True)
def test_swagger_ui_renders_offline_and_a_manager_tries_it_out(docs_page, source):
    page, base = docs_page
    refused = offline(page, base)
    account_manager_create(username="maria", password="a-long-test-password")
    admin_login(page, base, "maria", "a-long-test-password")

    page.goto(f"{base}/api/v1/docs/")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    schema = json.loads(page.evaluate("() => fetch('/api/v1/schema/?format=json').then(r => r.text())"))
    operations = sum(len([m for m in ops if m in ("get", "post", "patch", "delete")]) for ops in schema["paths"].values())
    shown = page.locator(".opblock").count()
    assert shown == operations and operations >= 20, (shown, operations)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-docs-swagger.png"), full_page=False)

    # Authorize → account: the header every "Try it out" call then carries; the cookie does the rest.
    page.click("button.authorize")
    account_box = page.locator(".auth-container", has_text="X-Account")
    account_box.locator("input").fill(source.account.slug)
    account_box.locator("button.authorize").click()
    page.click("button.close-modal")

    sources = page.locator("#operations-sources-sources_list")
    sources.locator(".opblock-summary").click()
    sources.locator("button.try-out__btn").click()
    sources.locator("button.execute").click()
    sources.locator(".live-responses-table tbody .response-col_status").first.wait_for()
    assert sources.locator(".live-responses-table tbody .response-col_status").first.inner_text().strip() == "200"
    assert source.slug in sources.locator(".live-responses-table .microlight").first.inner_text()

    # A write: Swagger UI sends the page's CSRF token, as DRF's session authentication demands.
    keys = page.locator("#operations-keys-keys_create")
    keys.locator(".opblock-summary").click()
    keys.locator("button.try-out__btn").click()
    keys.locator("textarea.body-param__text").fill('{"name": "from-the-docs", "scopes": ["keys"]}')
    keys.locator("button.execute").click()
    keys.locator(".live-responses-table tbody .response-col_status").first.wait_for()
    assert keys.locator(".live-responses-table tbody .response-col_status").first.inner_text().strip() == "201"
    created = ApiKey.objects.get(name="from-the-docs")
    assert created.account == source.account and created.scopes == ["keys"]
    page.screenshot(path=str(ARTIFACTS / "api-docs-swagger-try-it-out.png"), full_page=False)
    assert refused == []


@pytest.mark.django_db(transaction=True)
def test_redoc_renders_offline(docs_page):
    page, base = docs_page
    refused = offline(page, base)
    page.goto(f"{base}/api/v1/redoc/")
    page.wait_for_selector("h1:has-text('Cutout management API')", timeout=20_000)
    # ReDoc's side menu lists the operations: the one for purging renders among them.
    page.wait_for_selector("[role=menuitem]:has-text('purge')", timeout=20_000)
    assert page.locator("[role=menuitem]").count() >= 20
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-docs-redoc.png"), full_page=False)
    assert refused == []
