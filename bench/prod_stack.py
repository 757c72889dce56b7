"""The production stack for benchmarks: Postgres, Redis, S3 (moto over HTTP) and platform/Procfile's lines."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from common import ROOT, free_port, group_members, group_stop

DEMO = ROOT / "demo" / "origin"


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 60):
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(port)


class ProdStack:
    """Postgres (a database of its own, `<DATABASE_URL's name>_bench`, made fresh and dropped at the
    end), Redis (REDIS_URL's database, flushed), a moto S3 server with a fresh bucket, and the
    Procfile's `lines` run from `root` (a checkout of this project: the code under test), each as its
    own process writing to a log file, as bench/common.py's Stack does."""

    def __init__(self, *, root: Path = ROOT, lines=("web",), env: dict | None = None, images=(DEMO / "astronaut.jpg",
                                                                                                DEMO / "aitzgorri.jpg")):
        database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
        if not (database_url and database_url.startswith("postgres") and redis_url):
            raise SystemExit("Set DATABASE_URL (postgres://…) and REDIS_URL: this bench runs the production stack.")
        self.root, self.lines = Path(root), lines
        self.tmp = Path(tempfile.mkdtemp(prefix="cutout-prod-"))
        (self.tmp / "demo" / "origin").mkdir(parents=True)
        for image in images:
            shutil.copy(image, self.tmp / "demo" / "origin")
        parts = urlsplit(database_url)
        self.db_name = parts.path.lstrip("/") + "_bench"
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self._sql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)', f'CREATE DATABASE "{self.db_name}"')
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        self.s3_port = free_port()
        self.s3 = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_port(self.s3_port, self.s3)
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.s3_port}", region_name="us-east-1",
                     aws_access_key_id="bench", aws_secret_access_key="bench").create_bucket(Bucket="bench")
        self.port = free_port()
        (self.tmp / "prometheus").mkdir()
        base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL")}
        self.env = {**base, "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "bench", "CUTOUT_ENV_FILE": os.devnull,
                    "CUTOUT_VAR_DIR": str(self.tmp / "var"), "ORIGIN_LOCAL_ROOT": str(self.tmp / "demo"),
                    "DJANGO_STATIC_ROOT": str(self.tmp / "static"), "RENDER_RATE_LIMIT": "100000000/m",
                    "DATABASE_URL": urlunsplit(parts._replace(path="/" + self.db_name)), "REDIS_URL": redis_url,
                    "AWS_STORAGE_BUCKET_NAME": "bench", "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{self.s3_port}",
                    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_S3_REGION_NAME": "us-east-1",
                    "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prometheus"), "PORT": str(self.port),
                    "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **(env or {})}
        for command in (["migrate", "-v0"], ["bootstrap_demo"], ["collectstatic", "--noinput", "-v0"]):
            subprocess.run([sys.executable, "manage.py", *command], cwd=self.root, env=self.env, check=True,
                           stdout=subprocess.DEVNULL)
        self.log = (self.tmp / "stack.log").open("wb")
        self.procs = {}

    def _sql(self, *statements):
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def start(self):
        for line in (self.root / "platform" / "Procfile").read_text().splitlines():
            name, _, command = line.partition(":")
            if name.strip() in self.lines:
                self.procs[name.strip()] = subprocess.Popen(
                    ["sh", "-c", command.strip()], cwd=self.root, env=self.env, stdout=self.log,
                    stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, self.procs["web"])

    def web_pids(self) -> list[int]:
        """The granian worker processes (the group's members but its sh and granian's main process)."""
        web = self.procs["web"]
        members = group_members(web.pid)
        return [pid for pid in members if _ppid(pid) not in (None, web.pid) and pid != web.pid]

    def close(self):
        group_stop(*self.procs.values(), self.s3)
        self.procs = {}
        try:
            self._sql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)
