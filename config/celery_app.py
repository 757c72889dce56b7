"""The Celery application: configured from Django settings, tasks found in the apps."""

import os
import sys
from pathlib import Path

from celery import Celery, bootsteps
from celery.signals import celeryd_init, worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Alpha matting (pymatting's numba kernels) runs in a forked child of the worker; numba's own
# thread pool survives a fork, where GNU OpenMP's aborts the child. Read when numba is imported.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

app = Celery("cutout")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_broker_folders(sender, **kwargs):
    # The filesystem broker (the embedded default) needs its folders before the first message.
    for key in ("data_folder_in", "data_folder_out", "processed_folder"):
        folder = sender.conf.broker_transport_options.get(key)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)


@worker_init.connect
def _write_log_lines_at_once(**kwargs):
    # Buffered log lines (core/logging.py) save a web request a system call; a worker has no such
    # need, and its pool processes end with os._exit, which would drop lines still waiting.
    from core.logging import write_lines_at_once

    write_lines_at_once()


@celeryd_init.connect
def _wait_on_the_broker(conf=None, **kwargs):
    # The broker's socket_timeout bounds how long a request waits to publish a job (settings.py). A
    # worker's own connection keeps none: with one, a Redis that stops answering for a few seconds
    # made an ack time out ("Couldn't ack … TimeoutError") and left the consumer taking no more
    # messages; without it the worker waits for Redis to answer, and goes on.
    options = dict(conf.broker_transport_options or {})
    options.pop("socket_timeout", None)
    conf.broker_transport_options = options


def _runs_jobs() -> bool:
    # The `webhooks` process (-Q <queue>-webhooks,<queue>-usage) never runs the model: it neither
    # needs the files nor spends a model's memory. `-Q` is applied before these signals fire.
    return app.conf.task_default_queue in app.amqp.queues.consume_from


@worker_init.connect
def _check_models(**kwargs):
    # Fail fast: a worker without its model files would accept jobs it cannot run.
    from django.conf import settings

    if not _runs_jobs():
        return

    from cutouts.remover import models_missing, providers_missing
    from cutouts.removers import provision_hint

    absent = providers_missing(settings.BG_REMOVE_PROVIDERS)
    if absent:
        import onnxruntime

        sys.stderr.write(
            f"ONNX Runtime has no {', '.join(absent)} (BG_REMOVE_PROVIDERS); it has "
            f"{', '.join(onnxruntime.get_available_providers())}. Install the ONNX Runtime build that "
            "has it (onnxruntime-gpu for CUDA, onnxruntime-openvino for OpenVINO), or change BG_REMOVE_PROVIDERS.\n"
        )
        sys.stderr.flush()
        os._exit(2)
    missing = models_missing(settings.BG_REMOVE_MODELS)
    if missing:
        sys.stderr.write(
            f"Background-removal model(s) not provisioned: {', '.join(missing)}.\n"
            f"Run `{provision_hint(missing)}` first.\n"
        )
        sys.stderr.flush()
        os._exit(2)


@worker_process_init.connect
def _load_models(**kwargs):
    # Each pool process loads every model once, before its first job, and keeps it.
    from django.conf import settings

    from cutouts.removers import remover_get

    if not _runs_jobs():
        return
    for name in settings.BG_REMOVE_MODELS:
        remover_get(name)


class _WorkerReports(bootsteps.StartStopStep):
    """While the consumer runs (connected, taking messages), a worker of the job queue reports in
    for /readyz (cutouts/workers.py); a worker that lost its broker or died stops reporting."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        self.reports = None
        super().__init__(parent, **kwargs)

    def start(self, parent):
        if not _runs_jobs():
            return
        from cutouts.workers import WorkerReports

        self.reports = WorkerReports()
        self.reports.start()

    def stop(self, parent):
        if self.reports is not None:
            self.reports.stop()
            self.reports = None

    shutdown = stop


app.steps["consumer"].add(_WorkerReports)
