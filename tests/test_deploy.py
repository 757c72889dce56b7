"""docs/deploy.md's one-machine path, followed as written in a fresh clone, on PostgreSQL and Redis:
a new virtual environment, production.env, the management commands, honcho, and then the systemd
units honcho exports, each process started as systemd would start it."""

import os
import pty
import re
import secrets
import select
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings

from tests.conftest import FIXTURES, ROOT, free_port, stop_process

DEPLOY = ROOT / "docs" / "deploy.md"
FENCE = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
# What a shell on a server holds, not what this test run's environment does.
KEPT = ("HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS",
        "PIP_TRUSTED_HOST", "PIP_CONFIG_FILE", "PIP_NO_INDEX")
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROCESSES = ("web", "worker", "webhooks", "beat")

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"^#{2,3} ", text[start + len(heading):], re.MULTILINE)
    return text[start:start + len(heading) + following.start()] if following else text[start:]


def commands(block: str) -> list[str]:
    lines, current = [], ""
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        lines.append(current)
        current = ""
    return lines


def fresh_clone(destination: Path) -> Path:
    """What `git clone` of the working tree would hold: tracked and new files, not ignored ones."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode & 0o777)
    return destination


class Terminal:
    """A bash script on a terminal of its own (createsuperuser asks for the password there), its
    output kept; answers the password prompts."""

    def __init__(self, script: str, cwd: Path, env: dict, password: str):
        self.output = bytearray()
        self.password = password.encode()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(cwd)
            os.execve("/bin/bash", ["bash", "-c", script], env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        answered = 0
        while True:
            ready, _, _ = select.select([self.fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk
            if self.output.count(b"Password") > answered:
                answered += 1
                os.write(self.fd, self.password + b"\n")

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def alive(self) -> bool:
        return os.waitpid(self.pid, os.WNOHANG) == (0, 0)

    def stop(self):
        try:
            os.killpg(self.pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.waitpid(self.pid, os.WNOHANG) != (0, 0):
                return
            time.sleep(0.2)
        os.killpg(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def wait_ready(base: str, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert alive(), "a process of the deployment exited"
        try:
            last = requests.get(f"{base}/readyz", timeout=5)
            if last.status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{base}/readyz: {last and last.text}")


def cutout(base: str, path: str) -> requests.Response:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = requests.get(f"{base}/render/{path}", timeout=30)
        if response.status_code != 202:
            return response
        time.sleep(1)
    raise TimeoutError(path)


@pytest.fixture
def database():
    name = f"deploy_{os.getpid()}_{secrets.token_hex(3)}"
    db = settings.DATABASES["default"]
    admin = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER']} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def systemd_unit(path: Path) -> dict:
    """The keys of a unit honcho exported, with systemd's escapes checked and undone."""
    unit = {"Environment": [], "EnvironmentFile": []}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.startswith(("[", "#")):
            continue
        if key in unit and isinstance(unit[key], list):
            unit[key].append(value)
        else:
            unit[key] = value
    return unit


def systemd_unescape(value: str) -> str:
    # Every `%` and `$` must be escaped, or systemd expands it itself before the shell runs.
    assert not re.search(r"(?<!%)%(?!%)", value.replace("%%", "")), value
    assert "$" not in value.replace("$$", ""), value
    return value.replace("%%", "%").replace("$$", "$")


def test_one_machine_as_deploy_md_says_then_its_systemd_units(tmp_path, database):
    text = DEPLOY.read_text()
    first, second = FENCE.findall(section(text, "### One machine"))[:2]
    (export,) = commands(FENCE.findall(section(text, "### Supervising workers"))[0])
    checkout = fresh_clone(tmp_path / "cutout")
    env = {k: v for k, v in os.environ.items() if k in KEPT}
    env["PATH"] = os.environ["PATH"]
    # A developer's checkout: `make run` left its development .env there.
    (checkout / ".env").write_text("DJANGO_SECRET_KEY=development-key\nDJANGO_DEBUG=true\n")

    # 1. The environment, production.env and its secret key, as written.
    setup = subprocess.run(["bash", "-ec", "\n".join(commands(first))], cwd=checkout, env=env,
                           capture_output=True, text=True, timeout=900)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    production = checkout / "production.env"
    assert production.stat().st_mode & 0o777 == 0o600
    assert re.search(r"^DJANGO_SECRET_KEY=[\w-]{50,}$", production.read_text(), re.MULTILINE)

    # 2. The edit the docs ask for: this machine's database and Redis, a port, and (for this test
    # only) a local folder to cut out from and a queue of its own.
    port = free_port()
    origin = tmp_path / "origins"
    (origin / "photos").mkdir(parents=True)
    (origin / "photos" / "astronaut.jpg").write_bytes((FIXTURES / "astronaut.jpg").read_bytes())
    (origin / "photos" / "chelsea.png").write_bytes((FIXTURES / "chelsea.png").read_bytes())
    values = {"DATABASE_URL": database, "REDIS_URL": settings.REDIS_URL, "PORT": str(port),
              "ORIGIN_LOCAL_ROOT": str(origin), "CELERY_QUEUE": f"deploy-{os.getpid()}",
              "BG_REMOVE_MODEL_HOME": str(settings.BG_REMOVE_MODEL_HOME)}
    lines = [line for line in production.read_text().splitlines() if line.split("=")[0] not in values]
    production.write_text("\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n")

    # 3. The management commands and honcho, as written (createsuperuser asks on the terminal).
    password = secrets.token_urlsafe(16)
    second_commands = commands(second)
    assert second_commands[-1].startswith(".venv/bin/honcho ")
    terminal = Terminal("set -e\n" + "\n".join(second_commands), checkout, env, password)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, timeout=300, alive=terminal.alive)
        output = terminal.text()
        for process in PROCESSES:
            assert f"{process}.1 " in output, (process, output[-3000:])
        key = re.search(r"^(ck_\w+)\s*$", output, re.MULTILINE)[1]
        account = requests.get(f"{base}/api/v1/sources", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert account.status_code == 200 and [s["slug"] for s in account.json()] == ["photos"]
        # The superuser signs in to the admin.
        session = requests.Session()
        login = session.get(f"{base}/admin/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)[1]
        signed_in = session.post(f"{base}/admin/login/?next=/admin/", timeout=10, allow_redirects=False,
                                 data={"username": "admin", "password": password, "csrfmiddlewaretoken": token},
                                 headers={"Referer": f"{base}/admin/login/"})
        assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/admin/", signed_in.text[:500]
        # Production, not development: no debug page for a missing one.
        missing = requests.get(f"{base}/no-such-page", timeout=10)
        assert missing.status_code == 404 and "DEBUG = True" not in missing.text
        # A cutout through the worker, with the account the docs made and a local-folder source.
        make_source = subprocess.run(
            [".venv/bin/python", "manage.py", "create_source", "acme", "local", "--kind", "local",
             "--local-path", "photos"], cwd=checkout, capture_output=True, text=True,
            env={**env, "CUTOUT_ENV_FILE": str(production)})
        assert make_source.returncode == 0, make_source.stderr
        done = cutout(base, "local/astronaut.jpg?bg-remove=true")
        assert done.status_code == 200 and done.headers["Content-Type"] == "image/png", done.text[:300]
    finally:
        terminal.stop()
    assert "development settings file" not in terminal.text()

    # 4. The units honcho exports, as written; each started as systemd starts it: the unit's
    # working directory, its environment files and lines, its ExecStart with systemd's escapes
    # undone, systemd's PATH (no virtual environment on it). (Not as the unit's User=: this test
    # runs as whoever runs it.)
    exported = subprocess.run(["bash", "-ec", export], cwd=checkout, env=env, capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    units = {name: systemd_unit(checkout / "var" / "units" / f"cutout-{name}-1.service") for name in PROCESSES}
    assert "cutout-web.target" in (checkout / "var" / "units" / "cutout.target").read_text()
    started = []
    try:
        for name, unit in units.items():
            assert unit["WorkingDirectory"] == str(checkout) and unit["User"] == "cutout"
            assert unit["KillMode"] == "control-group" and unit["Restart"] == "always"
            unit_env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "HOME": env.get("HOME", "/root")}
            for file in unit["EnvironmentFile"]:
                for line in Path(file.lstrip("-")).read_text().splitlines():
                    key, sep, value = line.partition("=")
                    if sep and not key.startswith("#"):
                        unit_env[key.strip()] = value.strip()
            for assignment in unit["Environment"]:
                key, _, value = shlex.split(systemd_unescape(assignment))[0].partition("=")
                unit_env[key] = value
            assert unit_env["CUTOUT_ENV_FILE"] == str(production)
            argv = shlex.split(systemd_unescape(unit["ExecStart"]))
            assert argv[:2] == ["/bin/sh", "-c"]
            log = (tmp_path / f"{name}.log").open("wb")
            started.append(subprocess.Popen(argv, cwd=unit["WorkingDirectory"], env=unit_env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True))
        wait_ready(base, timeout=120, alive=lambda: all(p.poll() is None for p in started))
        done = cutout(base, "local/chelsea.png?bg-remove=true&w=200")
        assert done.status_code == 200 and done.headers["Content-Type"] == "image/png"
        # The webhooks worker's node is named after the host, as the Procfile says (`%h` survived).
        deadline = time.monotonic() + 30
        while f"webhooks@{socket.gethostname()}" not in (tmp_path / "webhooks.log").read_text(errors="replace"):
            assert time.monotonic() < deadline, (tmp_path / "webhooks.log").read_text(errors="replace")[-2000:]
            time.sleep(0.5)
        # The job of that new image ran in the worker unit.
        assert "succeeded" in (tmp_path / "worker.log").read_text(errors="replace")
    finally:
        for process in started:
            stop_process(process, sig=signal.SIGTERM, timeout=30)
