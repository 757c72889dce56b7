"""Structured logs: one JSON object per line, with the request's or job's context as fields."""

import json
import logging
import os
import threading
import time

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


class PlainFormatter(logging.Formatter):
    """The plain format, with the time's text made once per second rather than once per line."""

    _second: int | None = None
    _text = ""

    def formatTime(self, record, datefmt=None):
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._text, self._second = time.strftime(self.default_time_format, self.converter(second)), second
        return self.default_msec_format % (self._text, record.msecs)


class BufferedStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes its lines in batches: at most `flush_seconds` after the first
    line waiting, at once past `max_bytes` waiting, and at once for a WARNING or worse (and the
    lines before it). One write per batch instead of one system call per line, which was a
    sixth of a kept hit's cost; lines still waiting when the process is killed (SIGKILL) are
    lost, as in any buffered log. `flush_seconds` 0 writes each line at once."""

    def __init__(self, stream=None, flush_seconds: float = 0.2, max_bytes: int = 64 * 1024):
        super().__init__(stream)
        self.flush_seconds = flush_seconds
        self.max_bytes = max_bytes
        self._lines: list[str] = []
        self._size = 0
        self._wake = threading.Event()
        self._flusher = None
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self):
        self._lines, self._size, self._flusher = [], 0, None
        self._wake = threading.Event()

    def emit(self, record):
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        # Called with the handler's lock held (Handler.handle).
        self._lines.append(line)
        self._size += len(line)
        if self.flush_seconds <= 0 or record.levelno >= logging.WARNING or self._size >= self.max_bytes:
            self._write()
        elif len(self._lines) == 1:
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_later, name="log-flush", daemon=True)
                self._flusher.start()
            self._wake.set()

    def _write(self):
        lines, self._lines, self._size = self._lines, [], 0
        if lines:
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except Exception:
                pass  # Nowhere to report it: the log stream itself failed (as StreamHandler's handleError).

    def _flush_later(self):
        wake = self._wake
        while True:
            wake.wait()
            wake.clear()
            time.sleep(self.flush_seconds)
            self.flush()

    def flush(self):
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def close(self):
        self.flush()
        super().close()


def write_lines_at_once():
    """Make every BufferedStreamHandler write each line as it comes. For Celery's processes: a
    job logs a few lines a second at most, and a pool process ends with os._exit, which would drop
    the lines still waiting (a job's "done" line among them)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BufferedStreamHandler):
            handler.flush()
            handler.flush_seconds = 0
