"""The curl examples in docs/api.md, run in order against a live server."""

import json
import os
import re
import subprocess

import pytest

from accounts.services import api_key_create
from tests.conftest import ROOT
from tests.factories import SourceFactory

BLOCK = re.compile(r"```sh\n(.*?)```", re.S)


@pytest.mark.django_db(transaction=True)
def test_every_curl_example_works(live_server, account, origin_root):
    SourceFactory(account=account, slug="demo", kind="local", local_path="photos")
    _, key = api_key_create(account=account, scopes=["read", "write", "purge", "keys"])
    blocks = BLOCK.findall((ROOT / "docs" / "api.md").read_text())
    assert len(blocks) >= 10
    env = {**os.environ, "BASE": live_server.url, "KEY": key}
    for block in blocks:
        # -f: an HTTP error fails the example.
        command = block.replace("curl -s ", "curl -sS -f ")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr}"
        output = result.stdout.strip()
        if output.startswith(("{", "[")):
            json.loads(output)
        else:
            assert re.fullmatch(r"2\d\d", output), (block, output)
