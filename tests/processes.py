"""Processes of platform/Procfile started as honcho would, for tests that need more than one worker."""

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, WorkerProcess, stop_process

PROCFILE = ROOT / "platform" / "Procfile"


def procfile_line(name: str) -> str:
    for raw in PROCFILE.read_text().splitlines():
        key, _, command = raw.partition(":")
        if key.strip() == name:
            return command.strip()
    raise KeyError(name)


def start_procfile_process(name: str, env_overrides: dict, log_path: Path, *, ready_timeout: float = 90,
                           ready_marker: str = " ready.", argv_prefix: tuple = ()) -> WorkerProcess:
    """The Procfile's `name` line run by /bin/sh (it uses ${VAR:-default}), the venv first on PATH;
    `argv_prefix` runs it through another program (e.g. `unshare`), which must exec it."""
    env = {**os.environ, **env_overrides}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = log_path.open("wb")
    line = procfile_line(name)
    # exec, so the process is the program itself; not for a line of several commands (beat's
    # `mkdir … && celery beat`), whose shell stays (stop_process ends the whole group).
    command = line if "&&" in line else f"exec {line}"
    proc = subprocess.Popen([*argv_prefix, "/bin/sh", "-c", command], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    process = WorkerProcess(proc, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{process.log()}")
        if ready_marker in process.log():
            return process
        time.sleep(0.2)
    stop_process(proc)
    raise TimeoutError(f"{name} not ready in {ready_timeout}s:\n{process.log()}")


def pool_children(pid: int) -> list[int]:
    """Live child processes of `pid`, read from /proc (so no `ps` of ours is among them)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the process's peak resident set since it started."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(pid)


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(pid)


def purge_queues(*names: str) -> None:
    """Drops what earlier tests of the run left in these queues: with the fair pick, any job
    message runs whichever job is due, so a stale one could run this test's job."""
    from django.conf import settings

    from config.celery_app import app

    with app.connection_for_write() as conn:
        for name in names or (settings.CELERY_TASK_DEFAULT_QUEUE, settings.CELERY_WEBHOOK_QUEUE):
            conn.default_channel.queue_purge(name)
