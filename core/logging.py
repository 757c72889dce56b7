"""Structured logs: one JSON object per line, with the request's or job's context as fields."""

import atexit
import json
import logging
import logging.handlers
import os
import queue

# Attributes every LogRecord has; anything else was passed with `extra=` and becomes a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class BackgroundStreamHandler(logging.handlers.QueueHandler):
    """A StreamHandler whose formatting and writing run on a thread of its own: the thread that
    logs (a request's, for the access log) only puts the record on a queue.

    A forked child (a Celery pool process) gets a thread of its own for the same queue, so
    nothing it logs waits for a thread that did not survive the fork. Records are formatted as
    they are written, so the logging thread never pays for the JSON.
    """

    def __init__(self, stream=None):
        super().__init__(queue.SimpleQueue())
        self.target = logging.StreamHandler(stream)
        self._listen()
        os.register_at_fork(after_in_child=self._child)
        atexit.register(self.flush_queue)

    def _child(self):
        # The parent's queued records are the parent's to write: the child starts empty.
        self.queue = queue.SimpleQueue()
        self._listen()

    def _listen(self):
        self.listener = logging.handlers.QueueListener(self.queue, self.target)
        self.listener.start()

    def setFormatter(self, fmt):
        self.target.setFormatter(fmt)

    def prepare(self, record):
        return record  # Formatted on the listener's thread, by the stream's own formatter.

    def flush_queue(self):
        """Writes what is queued (at exit, and for tests)."""
        self.listener.stop()
        self._listen()
