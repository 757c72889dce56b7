"""The curl examples in docs/removebg.md, run in order against a live server and a real worker."""

import io
import json
import os
import re
import shutil
import subprocess
import zipfile

import pytest
from PIL import Image

from accounts.services import api_key_create
from removebg_api.models import CreditAccount
from tests.conftest import FIXTURES, ROOT, start_worker, stop_process
from tests.processes import purge_queues

BLOCK = re.compile(r"```sh\n(.*?)```", re.S)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_every_curl_example_works(live_server, account, worker_env, tmp_path):
    CreditAccount.objects.create(account=account, credits=5, free_calls=50)
    _, key = api_key_create(account=account, scopes=["removebg"])
    blocks = BLOCK.findall((ROOT / "docs" / "removebg.md").read_text())
    assert len(blocks) >= 6
    folder = tmp_path / "examples"
    folder.mkdir()
    shutil.copy(FIXTURES / "astronaut.jpg", folder / "astronaut.jpg")
    env = {**os.environ, "BASE": live_server.url, "KEY": key}
    purge_queues()
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        for block in blocks:
            # -f: an HTTP error fails the example.
            command = block.replace("curl -s ", "curl -sS -f ")
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], env=env, capture_output=True,
                                    text=True, timeout=120, cwd=folder)
            assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr}"
            output = result.stdout.strip()
            if output.startswith("{"):
                json.loads(output)
            else:
                assert output == "200", (block, output)
    finally:
        stop_process(worker.proc)
    assert Image.open(folder / "no-bg.png").mode == "RGBA"
    assert Image.open(folder / "on-blue.jpg").format == "JPEG"
    names = zipfile.ZipFile(io.BytesIO((folder / "no-bg.zip").read_bytes())).namelist()
    assert sorted(names) == ["alpha.png", "color.jpg"]
