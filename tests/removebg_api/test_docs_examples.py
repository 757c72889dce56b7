"""The recipes of docs/removebg.md (curl, PyPI `removebg`, npm `remove.bg`), each run as written by
its real program (the curl binary, python, node) against a real web process and a real worker, on
a fresh account: unmetered, as a new install's."""

import base64
import io
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest
from PIL import Image

from accounts.services import api_key_create
from removebg_api.models import Call, CreditAccount
from tests.conftest import FIXTURES, ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

DOC = ROOT / "docs" / "removebg.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture
def folder(tmp_path):
    """The reader's folder: `photo.jpg` (the astronaut, 512×512) and nothing else."""
    path = tmp_path / "examples"
    path.mkdir()
    (path / "photo.jpg").write_bytes((FIXTURES / "astronaut.jpg").read_bytes())
    return path


@pytest.fixture
def env(removebg_server, account, httpserver, photo_png):
    """$BASE, $KEY (a new key of an account that never had credits set) and the two web images."""
    _, key = api_key_create(account=account, scopes=["removebg"])
    httpserver.expect_request("/chelsea.png").respond_with_data(photo_png, content_type="image/png")
    background = io.BytesIO()
    Image.new("RGB", (300, 200), (0, 0, 255)).save(background, "PNG")
    httpserver.expect_request("/background.png").respond_with_data(background.getvalue(), content_type="image/png")
    return {**os.environ, "BASE": removebg_server.url, "KEY": key,
            "IMAGE_URL": httpserver.url_for("/chelsea.png"), "BG_IMAGE_URL": httpserver.url_for("/background.png")}


def run(command: list[str], env: dict, folder) -> str:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=folder)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_every_curl_example_works_as_written(env, folder, account):
    examples = blocks("sh")
    assert len(examples) >= 9
    outputs = [run(["bash", "-euo", "pipefail", "-c", block], env, folder) for block in examples]
    # remove.bg's first example on a fresh account: every size served, unmetered.
    first = Image.open(folder / "no-bg.png")
    assert first.format == "PNG" and first.mode == "RGBA" and first.size == (512, 512)
    assert first.getchannel("A").getpixel((0, 0)) < 8 and first.getchannel("A").getpixel((250, 150)) > 247
    assert CreditAccount.objects.get(account=account).credits is None
    assert Image.open(folder / "no-bg-from-url.png").size == (451, 300)
    answer = json.loads((folder / "no-bg.json").read_text())["data"]
    preview = Image.open(io.BytesIO(base64.b64decode(answer["result_b64"])))
    assert preview.size == (500, 500) and answer["foreground_width"] <= 500
    matte = Image.open(io.BytesIO(base64.b64decode(json.loads((folder / "matte.json").read_text())["data"]
                                                   ["result_b64"])))
    assert matte.mode == "L"
    webp = Image.open(folder / "no-bg.webp")
    assert webp.format == "WEBP" and webp.mode == "RGBA" and webp.getpixel((0, 0))[3] == 0
    on_blue = Image.open(folder / "on-blue.jpg")
    assert on_blue.format == "JPEG" and on_blue.getpixel((2, 2)) == pytest.approx((0x81, 0xD4, 0xFA), abs=8)
    on_background = Image.open(folder / "on-background.jpg")
    assert on_background.getpixel((2, 2)) == pytest.approx((0, 0, 255), abs=8)
    names = zipfile.ZipFile(folder / "no-bg.zip").namelist()
    assert sorted(names) == ["alpha.png", "color.jpg"]
    # The last block's two answers, one after the other (no newline between them).
    account_answer, end = json.JSONDecoder().raw_decode(outputs[-1])
    improve_answer = json.loads(outputs[-1][end:])
    assert account_answer["data"]["attributes"]["credits"]["metered"] is False
    assert set(improve_answer) == {"id"}
    # Charged as remove.bg computes it, nothing taken.
    assert Call.objects.filter(size="50mp", credits=1, metered=False).exists()


def test_the_python_client_recipe_works_as_written(env, folder):
    (recipe,) = blocks("python")
    (folder / "recipe.py").write_text(recipe)
    run([sys.executable, "recipe.py"], env, folder)
    image = Image.open(folder / "photo.jpg_no_bg.png")
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (500, 500)  # size="regular".
    assert Image.open(folder / "from-url.png").size == (451, 300)
    assert Call.objects.count() == 2


def test_the_npm_client_recipe_works_as_written(env, folder, npm_client_dir):
    (recipe,) = blocks("js")
    (folder / "recipe.js").write_text(recipe)
    # The application's folder after `npm install remove.bg@1.3.0`.
    (folder / "node_modules").symlink_to(npm_client_dir / "node_modules")
    output = run(["node", "recipe.js"], env, folder)
    assert output.strip() == "500x500, 0.25 credits"  # A preview's price, reported; nothing taken.
    image = Image.open(folder / "no-bg-node.png")
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (500, 500)
    # The same recipe with a wrong key fails as remove.bg's clients fail: its error, exit 1.
    result = subprocess.run(["node", "recipe.js"], env={**env, "KEY": "wrong"}, capture_output=True, text=True,
                            timeout=60, cwd=folder)
    assert result.returncode == 1 and json.loads(result.stderr)[0]["title"] == "API Key invalid"
