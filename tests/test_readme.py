"""The README's management commands, run as written in a checkout that `make run` has set up."""

import os
import re
import shlex
import subprocess

from tests.conftest import ROOT

README = ROOT / "README.md"
# What a developer's shell may hold that would stand in for the checkout's own settings.
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AWS_STORAGE_BUCKET_NAME", "CUTOUT_MEDIA_ROOT",
                     "CELERY_QUEUE", "DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "DJANGO_DEBUG")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELLS = {"", "sh", "bash", "console", "shell"}
# A command in running text is a code span that starts with the checkout's virtual environment;
# `python manage.py provision_models [u2netp] [u2net]` is a synopsis, not a command to paste.
INLINE = re.compile(r"`(\.venv/bin/[^`]+)`")


def readme_commands(text: str) -> list[str]:
    """Every shell command README.md shows: fenced shell blocks (only the `$ ` lines when a block
    has prompts, the rest being output), continuations joined, and inline `.venv/bin/…` spans."""
    commands = []
    for language, body in FENCE.findall(text):
        if language not in SHELLS:
            continue
        lines = body.splitlines()
        prompted = any(line.startswith("$ ") for line in lines)
        current = None
        for line in lines:
            if current is not None:
                current += " " + line.strip()
            elif prompted and line.startswith("$ "):
                current = line[2:]
            elif not prompted and line.strip() and not line.lstrip().startswith("#"):
                current = line.strip()
            else:
                continue
            if current.endswith("\\"):
                current = current[:-1].rstrip()
            else:
                commands.append(current)
                current = None
    commands += [" ".join(span.split()) for span in INLINE.findall(text)]
    return commands


def management_commands() -> list[str]:
    return [command for command in readme_commands(README.read_text())
            if "manage.py" in shlex.split(command, comments=True)]


def test_the_extraction_finds_prompted_continued_and_inline_commands():
    text = (
        "```sh\nmake run    # comment\n# only a comment\n```\n"
        "```sh\n$ curl -s \\\n    'http://x/'\n200 image/png\n$ echo hi\n```\n"
        "```python\nprint('not a shell')\n```\n"
        "Create one with\n`.venv/bin/python manage.py create_api_key demo\n--scopes read`; `python manage.py x [y]`.\n"
    )
    assert readme_commands(text) == ["make run    # comment", "curl -s 'http://x/'", "echo hi",
                                     ".venv/bin/python manage.py create_api_key demo --scopes read"]


def test_readme_management_commands_work_verbatim_after_make_run(tmp_path):
    """`make run`'s setup (`make demo`: the .env, migrate, collectstatic, the demo account), then
    each README management command as typed in the checkout, with no settings in the shell.
    The state goes to a temporary folder and .env, never the checkout's own."""
    commands = management_commands()
    assert any(" create_api_key demo " in command for command in commands), commands
    env_file = tmp_path / ".env"
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(CUTOUT_VAR_DIR=str(tmp_path / "var"), CUTOUT_ENV_FILE=str(env_file),
               DJANGO_STATIC_ROOT=str(tmp_path / "static"))

    def sh(command: str, **variables) -> subprocess.CompletedProcess:
        return subprocess.run(["/bin/sh", "-c", command], cwd=ROOT, env={**env, **variables},
                              capture_output=True, text=True, timeout=60)

    # Without the file, the first README command stops as it did before `make run` wrote one.
    refused = sh(commands[0], CUTOUT_ENV_FILE=os.devnull)
    assert refused.returncode != 0 and "Set DJANGO_SECRET_KEY" in refused.stderr

    # `-o`: the virtual environment running this test is installed; make must not reinstall it.
    setup = sh("make --no-print-directory -o .venv/.installed demo")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    written = env_file.read_text()
    assert re.fullmatch(r"DJANGO_SECRET_KEY=[A-Za-z0-9_-]{50,}\nDJANGO_DEBUG=true\n", written), written
    assert env_file.stat().st_mode & 0o077 == 0, "the secret key is readable by others"
    again = sh(f"make --no-print-directory {shlex.quote(str(env_file))}")
    assert again.returncode == 0 and env_file.read_text() == written, "make rewrote an existing .env"

    for command in commands:
        result = sh(command)
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
