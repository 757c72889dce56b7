"""Every hostile origin in tests/hostile.py gets its 4xx (or renders) cheaply: through image_decode,
and through a real granian server whose CPU time and peak RSS are read from /proc."""

import functools
import io
import os
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import requests
from PIL import Image

from core.errors import ServiceError
from imaging.decode import image_decode
from rendering.operations.resize import resize_apply
from rendering.params import params_parse
from tests.conftest import ROOT, free_port, stop_process, wait_for_port, web_command
from tests.hostile import EXPECTED, HOSTILE, HTTP_EXPECTED

# The target for one request on this 2-core machine, with default settings.
MAX_CPU_SECONDS = 3.0
MAX_RSS_GROWTH = 600 * 1024 * 1024
HOSTILE_QUERY = "w=256"


@functools.cache
def hostile(name: str) -> bytes:
    return HOSTILE[name]()


def test_every_case_has_an_expected_answer():
    assert set(HOSTILE) == set(EXPECTED) == set(HTTP_EXPECTED)
    assert {status for status, _ in EXPECTED.values()} <= {200, 415, 422}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_image_decode_answers_each_hostile_file(name):
    status, code = EXPECTED[name]
    data = hostile(name)
    started = time.process_time()
    if status == 200:
        image = image_decode(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own complaints about the hostile metadata.
            header = Image.open(io.BytesIO(data))
        assert image.size == header.size and image.mode in ("RGB", "RGBA")
        assert image.info == {}
    else:
        with pytest.raises(ServiceError) as err:
            image_decode(data)
        assert (err.value.status_code, err.value.code) == (status, code)
        assert len(err.value.message) > 20
    assert time.process_time() - started < MAX_CPU_SECONDS


# --- Through a real server ------------------------------------------------------------------------

def _tree(pid: int) -> list[int]:
    """The process and its descendants (granian runs its workers as child processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class ServerMeter:
    """CPU-seconds and peak RSS growth of a server's process tree across one request."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self):
        self.pids = _tree(self.pid)
        for pid in self.pids:
            # "5" resets the peak RSS (VmHWM) to the current RSS, so the peak belongs to this request.
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        self.rss = {pid: _status_kb(pid, "VmRSS") for pid in self.pids}
        self.cpu = sum(_cpu_seconds(pid) for pid in self.pids)
        return self

    def __exit__(self, *exc):
        self.cpu_seconds = sum(_cpu_seconds(pid) for pid in self.pids) - self.cpu
        self.rss_growth = 1024 * max(_status_kb(pid, "VmHWM") - self.rss[pid] for pid in self.pids)


def _expected_render_size(data: bytes) -> tuple[int, int]:
    return resize_apply(image_decode(data), params_parse(HOSTILE_QUERY)).size


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_hostile_files_over_http_are_cheap_and_the_server_keeps_serving(source, origin_root, worker_env,
                                                                        settings, tmp_path):
    folder = origin_root / "photos"
    for name in HOSTILE:
        (folder / f"{name}.img").write_bytes(hostile(name))
    expected_sizes = {name: _expected_render_size(hostile(name)) for name in HOSTILE if HTTP_EXPECTED[name][0] == 200}
    env = {**worker_env, "REDIS_URL": settings.REDIS_URL, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL}
    log = (tmp_path / "web.log").open("wb")
    port = free_port()
    proc = subprocess.Popen(web_command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}/render/acme-photos/"
    rows = []
    try:
        wait_for_port(port, proc=proc)
        warm = requests.get(base + "astronaut.jpg?w=64", timeout=60)
        assert warm.status_code == 200, warm.text
        for i, name in enumerate(HOSTILE):
            with ServerMeter(proc.pid) as meter:
                response = requests.get(base + f"{name}.img?{HOSTILE_QUERY}", timeout=120)
            # A normal render in the same server process, next to each hostile one (new size: no cache hit).
            normal = requests.get(base + f"astronaut.jpg?w={100 + i}", timeout=60)
            rows.append((name, response, meter, normal, 100 + i))
    finally:
        stop_process(proc)
        log.close()

    table = [f"{'case':34s} status code                    CPU-s   RSS MB  normal"]
    failures = []
    for name, response, meter, normal, width in rows:
        status, code = HTTP_EXPECTED[name]
        got_code = response.json()["error"]["code"] if response.status_code != 200 else None
        table.append(f"{name:34s} {response.status_code}    {got_code or '-':24s} {meter.cpu_seconds:5.2f} "
                     f"{meter.rss_growth / 2**20:7.0f}  {normal.status_code}")
        if (response.status_code, got_code) != (status, code):
            failures.append(f"{name}: {response.status_code} {response.text[:200]}")
        elif status == 200:
            if Image.open(io.BytesIO(response.content)).size != expected_sizes[name]:
                failures.append(f"{name}: rendered size differs from the in-process render")
        else:
            body = response.json()["error"]
            if len(body["message"]) < 20 or response.headers["Cache-Control"] != "no-store":
                failures.append(f"{name}: unclear error {response.headers} {body}")
        if meter.cpu_seconds > MAX_CPU_SECONDS or meter.rss_growth > MAX_RSS_GROWTH:
            failures.append(f"{name}: {meter.cpu_seconds:.2f} CPU-s, {meter.rss_growth / 2**20:.0f} MB")
        if normal.status_code != 200 or Image.open(io.BytesIO(normal.content)).width != width:
            failures.append(f"{name}: the normal render next to it answered {normal.status_code}")
    print("\n".join(table))
    assert not failures, "\n".join(failures + table)
