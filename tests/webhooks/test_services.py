"""Webhooks: the API, signed deliveries to a real receiver, retries, address rules, and a finished job."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from werkzeug import Response

from accounts.services import api_key_create
from cutouts import services as jobs
from cutouts.models import BgRemoveJob
from cutouts.queueing import bg_remove_job_request
from tests.conftest import FIXTURES, free_port, start_worker, stop_process
from tests.factories import AccountFactory
from tests.processes import purge_queues, start_procfile_process
from webhooks import services as webhooks
from webhooks.models import Webhook, WebhookDelivery
from webhooks.tasks import webhook_deliver

pytestmark = pytest.mark.django_db


def key_client(account, scopes=("read", "write")):
    _, key = api_key_create(account=account, scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def api(account):
    return key_client(account)


@pytest.fixture
def loopback(settings):
    # pytest-httpserver listens on 127.0.0.1: only development settings may reach it.
    settings.ORIGIN_ALLOW_LOOPBACK = True


@pytest.fixture
def done_job(source):
    finished = timezone.now()
    return BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp", status="done",
                                      started_at=finished - timedelta(seconds=1.25), finished_at=finished)


def hook_for(account, httpserver, events=("job.done", "job.failed")):
    return webhooks.webhook_create(account=account, url=httpserver.url_for("/hook"), events=list(events))


def delivery_for(webhook, job, event="job.done") -> WebhookDelivery:
    # Outside a captured commit the queueing callback never runs: the test makes each attempt.
    webhooks.webhook_job_ended(job_id=job.id, event=event)
    return WebhookDelivery.objects.get(webhook=webhook, job=job, event=event)


def wait_until(predicate, timeout=60, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


# --- API -----------------------------------------------------------------------------------------

class TestApi:
    def test_create_shows_the_secret_once_and_reads_never(self, api, account):
        created = api.post("/api/v1/webhooks", {"url": "https://hooks.example.com/cutout"}, format="json")
        assert created.status_code == 201, created.content
        body = created.json()
        secret = body["secret"]
        assert secret.startswith("whsec_") and len(secret) > 40
        assert body["events"] == ["job.done", "job.failed"] and body["active"] is True
        assert Webhook.objects.get(pk=body["id"]).secret == secret

        listed = api.get("/api/v1/webhooks")
        detail = api.get(f"/api/v1/webhooks/{body['id']}")
        assert listed.status_code == detail.status_code == 200
        assert [w["url"] for w in listed.json()] == ["https://hooks.example.com/cutout"]
        for text in (listed.content.decode(), detail.content.decode()):
            assert secret not in text and "secret" not in text

    def test_events_are_a_subset_of_the_known_ones(self, api):
        only_failed = api.post("/api/v1/webhooks", {"url": "https://h.example.com/", "events": ["job.failed"]},
                               format="json")
        assert only_failed.status_code == 201 and only_failed.json()["events"] == ["job.failed"]
        for events in (["job.started"], []):
            refused = api.post("/api/v1/webhooks", {"url": "https://h.example.com/", "events": events}, format="json")
            assert refused.status_code == 400 and "events" in refused.json()["error"]["fields"]

    def test_https_is_required_unless_loopback_is_allowed(self, api, settings):
        settings.ORIGIN_ALLOW_LOOPBACK = False
        for url in ("http://hooks.example.com/x", "ftp://hooks.example.com/x"):
            refused = api.post("/api/v1/webhooks", {"url": url}, format="json")
            assert refused.status_code == 400, url
            assert refused.json()["error"]["fields"]["url"] == ["The webhook URL must use https."]
        settings.ORIGIN_ALLOW_LOOPBACK = True
        assert api.post("/api/v1/webhooks", {"url": "http://localhost:8000/x"}, format="json").status_code == 201

    @pytest.mark.parametrize("url", [
        "https://10.0.0.5/hook", "https://192.168.1.10/hook", "https://172.16.3.4/hook",
        "https://169.254.169.254/latest/meta-data", "https://127.0.0.1/hook", "https://100.64.0.1/hook",
        "https://[::1]/hook", "https://[fd00::1]/hook", "https://[::ffff:10.0.0.1]/hook", "https://0.0.0.0/hook",
    ])
    def test_a_literal_private_address_is_refused_at_registration(self, api, settings, url):
        settings.ORIGIN_ALLOW_LOOPBACK = False
        refused = api.post("/api/v1/webhooks", {"url": url}, format="json")
        assert refused.status_code == 400, refused.content
        assert "not allowed" in refused.json()["error"]["message"]
        assert not Webhook.objects.exists()

    def test_a_public_address_and_a_host_name_are_accepted(self, api):
        for url in ("https://93.184.216.34/hook", "https://hooks.example.com:8443/a?b=c"):
            assert api.post("/api/v1/webhooks", {"url": url}, format="json").status_code == 201, url

    def test_credentials_or_a_bad_port_in_the_url_are_refused(self, api):
        refused = api.post("/api/v1/webhooks", {"url": "https://user:pw@hooks.example.com/"}, format="json")
        assert refused.status_code == 400 and "credentials" in refused.json()["error"]["message"]
        refused = api.post("/api/v1/webhooks", {"url": "https://hooks.example.com:99999/"}, format="json")
        assert refused.status_code == 400 and "port" in refused.json()["error"]["message"]

    def test_an_account_has_a_bounded_number_of_webhooks(self, api, account):
        for i in range(webhooks.WEBHOOKS_PER_ACCOUNT):
            webhooks.webhook_create(account=account, url=f"https://h.example.com/{i}")
        over = api.post("/api/v1/webhooks", {"url": "https://h.example.com/more"}, format="json")
        assert over.status_code == 409 and over.json()["error"]["code"] == "webhook_limit"

    def test_delete(self, api, account):
        webhook = webhooks.webhook_create(account=account, url="https://h.example.com/")
        assert api.delete(f"/api/v1/webhooks/{webhook.pk}").status_code == 204
        assert api.get(f"/api/v1/webhooks/{webhook.pk}").status_code == 404
        assert not Webhook.objects.exists()

    def test_another_accounts_webhook_is_not_found(self, account):
        webhook = webhooks.webhook_create(account=account, url="https://h.example.com/")
        other = key_client(AccountFactory(slug="other"))
        for method, url in (("get", f"/api/v1/webhooks/{webhook.pk}"), ("delete", f"/api/v1/webhooks/{webhook.pk}"),
                            ("get", f"/api/v1/webhooks/{webhook.pk}/deliveries")):
            answer = getattr(other, method)(url)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", (method, url)
        assert other.get("/api/v1/webhooks").json() == []
        assert other.get("/api/v1/webhooks/99999999999999999999").status_code == 404
        assert Webhook.objects.filter(pk=webhook.pk).exists()

    def test_reads_need_read_and_writes_need_write(self, account):
        webhook = webhooks.webhook_create(account=account, url="https://h.example.com/")
        reader, writer = key_client(account, ["read"]), key_client(account, ["write"])
        assert reader.get("/api/v1/webhooks").status_code == 200
        assert reader.get(f"/api/v1/webhooks/{webhook.pk}/deliveries").status_code == 200
        denied = reader.post("/api/v1/webhooks", {"url": "https://h.example.com/2"}, format="json")
        assert denied.status_code == 403 and "`write` scope" in denied.json()["error"]["message"]
        assert reader.delete(f"/api/v1/webhooks/{webhook.pk}").status_code == 403
        assert writer.get("/api/v1/webhooks").status_code == 403
        assert writer.post("/api/v1/webhooks", {"url": "https://h.example.com/2"}, format="json").status_code == 201
        assert APIClient().get("/api/v1/webhooks").status_code == 401


# --- Events and deliveries -----------------------------------------------------------------------

def test_a_delivery_is_signed_and_verifiable(account, done_job, httpserver, loopback):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    webhook = hook_for(account, httpserver)
    delivery = delivery_for(webhook, done_job)

    result = webhooks.webhook_delivery_attempt(delivery_id=delivery.id)

    assert (result.status, result.attempts, result.response_status, result.last_error) == ("delivered", 1, 200, "")
    (request, _), = httpserver.log
    body = request.get_data()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "cutout-webhooks/1"
    assert request.headers["X-Cutout-Delivery"] == str(delivery.id)
    assert request.headers["X-Cutout-Event"] == "job.done"
    signature = request.headers["X-Cutout-Signature"]
    assert webhooks.webhook_signature_verify(webhook.secret, signature, body)
    assert not webhooks.webhook_signature_verify("whsec_wrong", signature, body)
    assert not webhooks.webhook_signature_verify(webhook.secret, signature, body + b" ")
    sent_at = int(signature.split(",")[0].removeprefix("t="))
    assert not webhooks.webhook_signature_verify(webhook.secret, signature, body, now=sent_at + 301)

    # Compact, in the documented order, and what the event says about the job.
    assert body.startswith(b'{"id":"%s","type":"job.done","created_at":"' % str(delivery.id).encode())
    assert b", " not in body and b": " not in body
    event = json.loads(body)
    job = event["data"]["job"]
    assert list(job) == ["id", "source", "path", "model", "status", "created_at", "finished_at",
                         "duration_seconds", "error", "url"]
    assert job["id"] == str(done_job.id) and job["source"] == "acme-photos" and job["status"] == "done"
    assert job["duration_seconds"] == 1.25 and job["error"] is None
    assert job["url"] == "/render/acme-photos/astronaut.jpg?bg-remove=true"


def test_a_5xx_is_retried_and_the_second_attempt_delivers(api, account, done_job, httpserver, loopback):
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("busy", status=500)
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("ok", status=204)
    webhook = hook_for(account, httpserver)
    delivery = delivery_for(webhook, done_job)

    first = webhooks.webhook_delivery_attempt(delivery_id=delivery.id)
    assert (first.status, first.attempts, first.response_status) == ("pending", 1, 500)
    assert first.last_error == "The endpoint answered HTTP 500."
    second = webhooks.webhook_delivery_attempt(delivery_id=delivery.id)
    assert (second.status, second.attempts, second.response_status, second.last_error) == ("delivered", 2, 204, "")
    # A duplicate message after delivery sends nothing.
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id).attempts == 2
    assert len(httpserver.log) == 2

    # The same body, byte for byte, on every attempt (the signature's timestamp may differ).
    assert httpserver.log[0][0].get_data() == httpserver.log[1][0].get_data()
    listed = api.get(f"/api/v1/webhooks/{webhook.pk}/deliveries").json()["results"]
    assert [(d["id"], d["event"], d["job"], d["status"], d["attempts"], d["response_status"]) for d in listed] == [
        (str(delivery.id), "job.done", str(done_job.id), "delivered", 2, 204)
    ]
    assert listed[0]["delivered_at"] and listed[0]["last_attempt_at"]


def test_the_task_retries_until_delivered(account, done_job, httpserver, loopback):
    for status in (503, 500):
        httpserver.expect_ordered_request("/hook").respond_with_data("busy", status=status)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    delivery = delivery_for(hook_for(account, httpserver), done_job)

    # apply() runs the retries at once, in this process, instead of after their countdown.
    webhook_deliver.apply(kwargs={"delivery_id": str(delivery.id)})

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 3, 200)


def test_the_task_gives_up_after_the_last_attempt(account, done_job, httpserver, loopback, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    httpserver.expect_request("/hook").respond_with_data("broken", status=500)
    delivery = delivery_for(hook_for(account, httpserver), done_job)

    webhook_deliver.apply(kwargs={"delivery_id": str(delivery.id)})

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 3, 500)
    assert len(httpserver.log) == 3


def test_the_retry_countdown_grows_exponentially_up_to_a_cap():
    countdowns = [webhooks.webhook_retry_countdown(attempts=n) for n in range(1, 9)]
    assert countdowns == [10, 20, 40, 80, 160, 300, 300, 300]


def test_a_redirect_is_a_failure_and_is_not_followed(account, done_job, httpserver, loopback):
    httpserver.expect_request("/hook").respond_with_data("", status=302, headers={"Location": "/elsewhere"})
    httpserver.expect_request("/elsewhere").respond_with_data("ok")
    delivery = delivery_for(hook_for(account, httpserver), done_job)

    result = webhooks.webhook_delivery_attempt(delivery_id=delivery.id)

    assert (result.status, result.response_status) == ("pending", 302)
    assert "redirects are not followed" in result.last_error
    assert [r.path for r, _ in httpserver.log] == ["/hook"]


def test_a_loopback_target_is_refused_at_once_without_retries(account, done_job, httpserver, settings):
    settings.ORIGIN_ALLOW_LOOPBACK = False
    httpserver.expect_request("/hook").respond_with_data("ok")
    # A host name passes registration; the address it resolves to is checked when connecting.
    webhook = webhooks.webhook_create(account=account, url=f"https://localhost:{httpserver.port}/hook")
    delivery = delivery_for(webhook, done_job)

    webhook_deliver.apply(kwargs={"delivery_id": str(delivery.id)})

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 1, None)
    assert delivery.last_error == "The webhook's address is not allowed (private, loopback or reserved network)."
    assert httpserver.log == []


def test_plain_http_is_refused_at_delivery_once_loopback_is_disallowed(account, done_job, httpserver, settings):
    settings.ORIGIN_ALLOW_LOOPBACK = True
    delivery = delivery_for(hook_for(account, httpserver), done_job)
    settings.ORIGIN_ALLOW_LOOPBACK = False

    result = webhooks.webhook_delivery_attempt(delivery_id=delivery.id)

    assert (result.status, result.attempts, result.last_error) == ("failed", 1, "The webhook URL must use https.")
    assert httpserver.log == []


def test_a_slow_receiver_times_out_and_is_retried(account, done_job, httpserver, loopback, monkeypatch):
    monkeypatch.setattr(webhooks, "TOTAL_TIMEOUT", 0.5)
    release = threading.Event()

    def slow(request):
        release.wait(10)
        return Response("late")

    httpserver.expect_request("/hook").respond_with_handler(slow)
    delivery = delivery_for(hook_for(account, httpserver), done_job)

    started = time.monotonic()
    result = webhooks.webhook_delivery_attempt(delivery_id=delivery.id)
    elapsed = time.monotonic() - started
    # The receiver (one thread) finishes here, so its late answer is not logged in another test.
    release.set()
    wait_until(lambda: httpserver.log)

    assert elapsed < 2
    assert (result.status, result.attempts, result.response_status) == ("pending", 1, None)
    assert "did not answer" in result.last_error


def test_a_refused_connection_is_retried(account, done_job, loopback):
    webhook = webhooks.webhook_create(account=account, url=f"http://127.0.0.1:{free_port()}/hook")
    delivery = delivery_for(webhook, done_job)

    result = webhooks.webhook_delivery_attempt(delivery_id=delivery.id)

    assert (result.status, result.attempts) == ("pending", 1)
    assert result.last_error == "The webhook endpoint could not be reached."


def test_a_deleted_webhook_leaves_nothing_to_send(account, done_job, httpserver, loopback):
    webhook = hook_for(account, httpserver)
    delivery = delivery_for(webhook, done_job)
    webhooks.webhook_delete(webhook=webhook)

    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id) is None
    webhook_deliver.apply(kwargs={"delivery_id": str(delivery.id)})
    assert httpserver.log == []


def test_one_delivery_per_active_subscribed_webhook_of_the_jobs_account(account, done_job):
    done_only = webhooks.webhook_create(account=account, url="https://a.example.com/", events=["job.done"])
    webhooks.webhook_create(account=account, url="https://b.example.com/", events=["job.failed"])
    inactive = webhooks.webhook_create(account=account, url="https://c.example.com/")
    Webhook.objects.filter(pk=inactive.pk).update(active=False)
    webhooks.webhook_create(account=AccountFactory(slug="other"), url="https://d.example.com/")

    webhooks.webhook_job_ended(job_id=done_job.id, event="job.done")

    assert list(WebhookDelivery.objects.values_list("webhook_id", "event", "status", "attempts")) == [
        (done_only.pk, "job.done", "pending", 0)
    ]


def test_errors_while_creating_events_are_logged_not_raised(caplog):
    webhooks.webhook_job_ended(job_id="not-a-uuid", event="job.done")
    assert "could not be created" in caplog.text
    assert not WebhookDelivery.objects.exists()


# --- Jobs that end -------------------------------------------------------------------------------

def test_a_failed_job_sends_job_failed_after_the_commit(account, source, httpserver, loopback,
                                                        django_capture_on_commit_callbacks):
    httpserver.expect_request("/hook").respond_with_data("ok")
    webhook = hook_for(account, httpserver, events=["job.failed"])
    job = BgRemoveJob.objects.create(source=source, path="missing.jpg", model="u2netp")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        jobs.bg_remove_job_process(job_id=job.id)
    # Nothing is announced before the job's end is committed.
    assert len(callbacks) == 1 and not WebhookDelivery.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        callbacks[0]()

    delivery = WebhookDelivery.objects.get(webhook=webhook)
    webhook_deliver.apply(kwargs={"delivery_id": str(delivery.id)})
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    (request, _), = httpserver.log
    assert webhooks.webhook_signature_verify(webhook.secret, request.headers["X-Cutout-Signature"],
                                             request.get_data())
    event = json.loads(request.get_data())
    assert event["type"] == "job.failed" and event["data"]["job"]["status"] == "failed"
    assert event["data"]["job"]["error"] == {"status": 404, "code": "origin_not_found",
                                             "message": "The image was not found at the origin."}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_finished_job_notifies_its_webhook_through_a_real_worker(account, source, httpserver, loopback,
                                                                    worker_env, tmp_path):
    """The job ends in this process; the event goes through Redis to a worker, which POSTs it."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    webhook = hook_for(account, httpserver)
    job = BgRemoveJob.objects.create(source=source, path="astronaut.jpg", model="u2netp")

    purge_queues()  # A stale job message would run this job in the worker (any message runs the fairest job).
    worker = start_worker({**worker_env, "ORIGIN_ALLOW_LOOPBACK": "true"}, tmp_path / "worker.log")
    try:
        assert jobs.bg_remove_job_process(job_id=job.id).status == "done"
        # The cutout worker does not consume the webhook queue: nothing is sent until the
        # webhooks process runs.
        time.sleep(3)
        assert list(WebhookDelivery.objects.values_list("status", "attempts")) == [("pending", 0)]
        hooks = start_procfile_process("webhooks", {**worker_env, "ORIGIN_ALLOW_LOOPBACK": "true"},
                                       tmp_path / "webhooks.log")
        try:
            delivery = wait_until(lambda: WebhookDelivery.objects.filter(status="delivered").first())
        finally:
            stop_process(hooks.proc)
    finally:
        stop_process(worker.proc)
    assert "webhook_deliver[" not in worker.log()

    (request, _), = httpserver.log
    body = request.get_data()
    assert webhooks.webhook_signature_verify(webhook.secret, request.headers["X-Cutout-Signature"], body)
    event = json.loads(body)
    assert event["id"] == str(delivery.id) and event["type"] == "job.done"
    assert event["data"]["job"]["id"] == str(job.id) and event["data"]["job"]["status"] == "done"
    assert event["data"]["job"]["duration_seconds"] > 0
    assert (delivery.event, delivery.job_id, delivery.attempts, delivery.response_status) == (
        "job.done", job.id, 1, 200
    )


class SilentReceiver:
    """Accepts every connection and never answers (nor closes): the worst webhook endpoint."""

    def __init__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.accepted:
            conn.close()


class SlowReceiver:
    """Answers 200, after `delay` seconds (below the delivery timeout)."""

    def __init__(self, delay=3.0):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_silent_and_slow_receivers_never_delay_a_cutout(account, source, origin_root, loopback, worker_env,
                                                        tmp_path):
    """Both processes of the Procfile's layout run: every finished job sends one delivery to a
    receiver that never answers and one to a slow one. The cutouts follow each other without a
    gap a delivery could explain (each silent attempt waits 10 s), while the silent deliveries
    time out and are retried and the slow ones are delivered."""
    silent, slow = SilentReceiver(), SlowReceiver(delay=3)
    silent_hook = webhooks.webhook_create(account=account, url=f"http://127.0.0.1:{silent.port}/hook")
    slow_hook = webhooks.webhook_create(account=account, url=f"http://127.0.0.1:{slow.port}/hook")
    names = ["astronaut.jpg", "chelsea.png"]
    for i in range(4):
        name = f"copy-{i}.jpg"
        (origin_root / "photos" / name).write_bytes((FIXTURES / "astronaut.jpg").read_bytes())
        names.append(name)
    env = {**worker_env, "ORIGIN_ALLOW_LOOPBACK": "true"}
    purge_queues()
    hooks = start_procfile_process("webhooks", {**env, "WEBHOOK_CONCURRENCY": "2"}, tmp_path / "webhooks.log")
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        for name in names:
            bg_remove_job_request(source=source, path=name, model="u2netp")
        done = wait_until(lambda: (rows := list(BgRemoveJob.objects.filter(status="done").order_by("started_at")))
                          and len(rows) == len(names) and rows, timeout=120)
        retried = wait_until(lambda: WebhookDelivery.objects.filter(webhook=silent_hook, attempts__gte=2).first(),
                             timeout=90)
        delivered = wait_until(lambda: WebhookDelivery.objects.filter(webhook=slow_hook, status="delivered")
                               .count() == len(names), timeout=60)
    finally:
        stop_process(worker.proc)
        stop_process(hooks.proc)
        silent.close()
        slow.close()

    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in zip(done, done[1:])]
    assert max(gaps) < 2, gaps
    total = (done[-1].finished_at - done[0].started_at).total_seconds()
    assert total < 10 * len(names) / 2, total  # Far below what even one silent delivery per job would add.
    assert delivered
    retried.refresh_from_db()
    first_attempt = WebhookDelivery.objects.filter(webhook=silent_hook).exclude(last_error="").first()
    assert first_attempt.last_error == "The webhook endpoint did not answer within 10 seconds."
    assert retried.status == "pending" and retried.delivered_at is None
    assert "webhook_deliver[" not in worker.log() and "bg_remove_job_run[" not in hooks.log()
    assert "retry: Retry in 10s" in hooks.log()
