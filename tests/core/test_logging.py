"""core/logging.py: records are formatted and written off the logging thread, none is lost at
exit, and a forked child's records are written too."""

import logging
import os
import subprocess
import sys
import threading

from core.logging import BackgroundStreamHandler
from tests.conftest import ROOT


class ThreadNoting(logging.Formatter):
    def __init__(self):
        super().__init__("%(message)s")
        self.threads = set()

    def format(self, record):
        self.threads.add(threading.get_ident())
        return super().format(record)


def test_formatting_happens_on_the_handlers_own_thread(tmp_path):
    with (tmp_path / "log").open("w") as stream:
        handler = BackgroundStreamHandler(stream)
        formatter = ThreadNoting()
        handler.setFormatter(formatter)
        logger = logging.Logger("background-test")
        logger.addHandler(handler)
        for i in range(100):
            logger.info("line %d", i)
        handler.flush_queue()
    assert (tmp_path / "log").read_text().splitlines() == [f"line {i}" for i in range(100)]
    assert formatter.threads and threading.get_ident() not in formatter.threads


SCRIPT = """
import logging, os, sys
from core.logging import BackgroundStreamHandler
handler = BackgroundStreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("t"); log.addHandler(handler); log.setLevel(logging.INFO)
log.info("parent before fork")
pid = os.fork()
if pid == 0:
    log.info("child")
    handler.flush_queue()
    os._exit(0)
os.waitpid(pid, 0)
for i in range(1000):
    log.info("parent %d", i)
"""


def test_nothing_is_lost_at_exit_and_a_forked_child_logs_too():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert "child" in lines and lines[0] == "parent before fork"
    assert [line for line in lines if line.startswith("parent ")][1:] == [f"parent {i}" for i in range(1000)]
