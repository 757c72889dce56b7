"""The admin as account managers use it, in a real browser (Playwright driving Debian's Chromium)."""


import pytest
import requests

from accounts.models import Account
from accounts.services import account_manager_create
from sources.models import Source
from tests.browser import ARTIFACTS, chromium_launched


@pytest.fixture
def browser_page(monkeypatch):
    with chromium_launched(monkeypatch) as browser:
        yield browser.new_page(viewport={"width": 1280, "height": 1000})


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


# Issue 24: the admin at 1280 × 800, as an account manager (staff in the group, not a superuser),
# a view-only staff user, and a superuser where only a superuser may act (a source's kind).
VIEWPORT = {"width": 1280, "height": 800}
# A POST from the page with its own CSRF token: [status, whether the page had a token].
POST_WITH_CSRF = """async (url) => {
    const token = document.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
    const response = await fetch(url, {method: "POST", headers: {"X-CSRFToken": token}});
    return [response.status, token.length > 0];
}"""


@pytest.fixture
def chromium(monkeypatch):
    with chromium_launched(monkeypatch) as browser:
        yield browser


def signed_in(browser, live_server, username, password="a-long-test-password"):
    context = browser.new_context(viewport=VIEWPORT)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def shot(page, name, **kwargs):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), **kwargs)


def images_loaded(page, selector):
    return page.eval_on_selector_all(selector, "els => els.map(e => e.complete && e.naturalWidth > 0)")


@pytest.mark.django_db(transaction=True)
def test_jobs_list_and_a_job_page_at_1280(chromium, live_server, source):
    from cutouts.models import BgRemoveJob
    from cutouts.services import bg_remove_job_process

    response = requests.get(f"{live_server.url}/render/{source.slug}/astronaut.jpg?bg-remove=true", timeout=10)
    job = bg_remove_job_process(job_id=response.json()["job"])
    BgRemoveJob.objects.create(source=source, path="some/rather/long/folder/name/of/a/campaign/photo-0001.jpg",
                               model="u2netp", status="failed", error_status=415, error_code="unsupported_media_type")
    BgRemoveJob.objects.create(source=source, path="queued.png", model="u2net")
    account_manager_create(username="anna", password="a-long-test-password")
    page = signed_in(chromium, live_server, "anna")

    page.goto(f"{live_server.url}/admin/cutouts/bgremovejob/")
    # Nothing scrolls sideways: not the page, not the table's own box (the admin lets it scroll),
    # and every cell ends inside what is shown.
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    results = page.locator("#changelist .results")
    assert results.evaluate("e => e.scrollWidth <= e.clientWidth")
    right = results.bounding_box()["x"] + results.bounding_box()["width"]
    for column in ["short_path", "source", "status_label", "model", "created", "took"]:
        for box in [page.locator(f"#result_list .field-{column}").nth(i).bounding_box() for i in range(3)]:
            assert box is not None and box["x"] + box["width"] <= right, column
            assert box["height"] < 40, column  # One line.
    assert page.locator("td.field-status_label").all_inner_texts() == ["queued", "failed 415", "done"]
    assert set(page.locator("td.field-model").all_inner_texts()) == {"u2netp", "u2net"}
    shot(page, "jobs-list.png")

    page.goto(f"{live_server.url}/admin/cutouts/bgremovejob/{job.pk}/change/")
    page.wait_for_load_state("networkidle")
    assert images_loaded(page, ".job-pictures img") == [True, True]
    sizes = page.eval_on_selector_all(".job-pictures img", "els => els.map(e => [e.naturalWidth, e.naturalHeight])")
    assert sizes[1] == [job.width, job.height]
    origin, cutout = [page.locator(".job-pictures img").nth(i).bounding_box() for i in range(2)]
    assert origin["y"] == cutout["y"] and cutout["x"] >= origin["x"] + origin["width"]  # Side by side.
    assert cutout["x"] + cutout["width"] <= VIEWPORT["width"]
    link = page.get_attribute("a.job-render-url", "href")
    assert requests.get(f"{live_server.url}{link}", timeout=10).headers["Content-Type"] == "image/png"
    timings = page.inner_text("fieldset:has(h2:text('Timings'))")
    assert " ms" in timings or " s" in timings
    shot(page, "job-page.png", full_page=True)


@pytest.mark.django_db(transaction=True)
def test_usage_chart_in_the_browser(chromium, live_server, source):
    from datetime import timedelta

    from django.utils import timezone

    from usage.models import UsageDaily

    today = timezone.now().date()
    for n, renders in enumerate([120, 80, 0, 45, 300, 210, 60, 5, 90, 150]):
        UsageDaily.objects.create(source=source, day=today - timedelta(days=n * 2), renders=renders,
                                  bytes_served=renders * 48_000)
    account_manager_create(username="anna", password="a-long-test-password")
    page = signed_in(chromium, live_server, "anna")
    page.goto(f"{live_server.url}/admin/accounts/account/{source.account.pk}/change/")
    chart = page.locator("svg.usage-chart")
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    assert box["width"] > 600 and box["height"] > 300
    fieldset = page.locator("fieldset:has(svg.usage-chart)").bounding_box()
    assert box["x"] + box["width"] <= fieldset["x"] + fieldset["width"]  # Whole, not cut off.
    assert page.get_by_role("img", name="Usage per day").count() == 1
    # The tallest renders bar is the 300 day's.
    tallest = page.eval_on_selector_all(
        "svg.usage-chart rect.bar[data-series=renders]",
        "els => els.reduce((a, e) => e.getBBox().height > a.h ? {h: e.getBBox().height, v: e.dataset.value} : a, {h: 0})")
    assert tallest["v"] == "300"
    chart.screenshot(path=str(ARTIFACTS / "usage-chart.png"))


@pytest.mark.django_db(transaction=True)
def test_source_form_shows_the_fields_of_its_kind(chromium, live_server, source, django_user_model):
    django_user_model.objects.create_superuser("root", password="a-long-test-password")
    page = signed_in(chromium, live_server, "root")
    page.goto(f"{live_server.url}/admin/sources/source/add/")
    visible = "els => els.filter(e => e.offsetParent !== null).map(e => e.className.split(' ').pop())"
    assert page.eval_on_selector_all("fieldset.origin-kind", visible) == []  # No kind chosen yet.
    for kind, field in [("web", "#id_base_url"), ("s3", "#id_s3_bucket"), ("local", "#id_local_path")]:
        page.select_option("#id_kind", kind)
        assert page.eval_on_selector_all("fieldset.origin-kind", visible) == [f"origin-kind-{kind}"]
        assert page.is_visible(field)
        shot(page, f"source-form-{kind}.png", full_page=True)
    # Typed into S3, then switched to a web folder: saved without the S3 fields, and said so.
    page.select_option("#id_account", str(source.account.pk))
    page.fill("#id_slug", "web-photos")
    page.select_option("#id_kind", "s3")
    page.fill("#id_s3_bucket", "left-over")
    page.select_option("#id_kind", "web")
    page.fill("#id_base_url", "https://images.example.com/")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .info")
    assert "S3 bucket" in page.inner_text(".messagelist")
    saved = Source.objects.get(slug="web-photos")
    assert (saved.kind, saved.s3_bucket) == ("web", "")

    # An account manager cannot change the kind: only its own fields, no switching.
    account_manager_create(username="anna", password="a-long-test-password")
    page = signed_in(chromium, live_server, "anna")
    page.goto(f"{live_server.url}/admin/sources/source/{saved.pk}/change/")
    assert page.eval_on_selector_all("fieldset.origin-kind", visible) == ["origin-kind-web"]
    shot(page, "source-form-manager-web.png", full_page=True)


@pytest.mark.django_db(transaction=True)
def test_signing_tokens_copy_and_rotate(chromium, live_server, source, django_user_model):
    from django.contrib.auth.models import Permission

    tokens = ["aaaa1111bbbb2222cccc3333dddd4444", "eeee5555ffff6666gggg7777hhhh8888"]
    Source.objects.filter(pk=source.pk).update(require_signature=True, secure_tokens=tokens)
    account_manager_create(username="anna", password="a-long-test-password")
    page = signed_in(chromium, live_server, "anna")
    change = f"{live_server.url}/admin/sources/source/{source.pk}/change/"
    page.goto(change)
    html = page.content()
    assert all(token not in html for token in tokens)
    assert page.locator("li.signing-token code").all_inner_texts() == ["aaaa•••", "eeee•••"]
    page.locator("li.signing-token").nth(1).locator("button.token-copy").click()
    page.wait_for_selector("li.signing-token >> nth=1 >> text=Copied")
    assert page.evaluate("navigator.clipboard.readText()") == tokens[1]
    assert all(token not in page.content() for token in tokens)  # Copied, never shown.
    page.locator("li.signing-token").nth(0).scroll_into_view_if_needed()
    shot(page, "tokens.png", full_page=True)

    # The same hand-made POST as the view-only user's below, to show what it would get if allowed.
    fingerprint = page.get_attribute("li.signing-token >> nth=0", "data-fingerprint")
    assert page.evaluate(POST_WITH_CSRF, f"/admin/sources/source/{source.pk}/tokens/{fingerprint}/reveal/") == [200, True]

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button.token-rotate")
    page.wait_for_selector(".messagelist .success")
    masked = page.locator("li.signing-token code").all_inner_texts()
    source.refresh_from_db()
    assert source.secure_tokens[1:] == tokens[:1] and masked == [f"{source.secure_tokens[0][:4]}•••", "aaaa•••"]
    shot(page, "tokens-rotated.png", full_page=True)
    page.goto(f"{change.removesuffix('change/')}history/")
    history = page.inner_text("#change-history")
    assert "Rotated the signing token" in history and "anna" in history
    assert all(token not in page.content() for token in source.secure_tokens + tokens)

    # View-only staff: the masked list, no buttons, and a hand-made POST (with the page's CSRF
    # token) gets nothing.
    viewer = django_user_model.objects.create_user("vic", password="a-long-test-password", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_source"))
    page = signed_in(chromium, live_server, "vic")
    page.goto(change)
    assert page.locator("li.signing-token code").count() == 2
    assert page.locator("button.token-copy, button.token-rotate").count() == 0
    fingerprint = page.get_attribute("li.signing-token >> nth=0", "data-fingerprint")
    reveal = f"/admin/sources/source/{source.pk}/tokens/{fingerprint}/reveal/"
    assert page.evaluate(POST_WITH_CSRF, reveal) == [403, True]  # A valid CSRF token: refused by permission.
    assert all(token not in page.content() for token in source.secure_tokens)
    shot(page, "tokens-view-only.png", full_page=True)
