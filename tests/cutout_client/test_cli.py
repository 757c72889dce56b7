"""The command's parts that need no server: its options, the folder as work, the record that resumes."""

import os
import subprocess
import sys
import tomllib
from importlib import import_module

import pytest

from cutout_client.cli import main, options_of, parser
from cutout_client.files import folder_scan, partial_path, partials_remove
from cutout_client.state import STATE_NAME, DoneLog
from tests.conftest import ROOT


def test_the_console_script_is_the_cli():
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["cutout"]
    module, _, function = target.partition(":")
    assert getattr(import_module(module), function) is main


def test_the_client_runs_without_django():
    code = "import sys, cutout_client.cli; assert not any(m.split('.')[0] == 'django' for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def args(*argv):
    return parser().parse_args(list(argv))


def test_flags_map_to_each_apis_own_options(tmp_path):
    removebg = args("removebg", "in", "out", "--size", "hd", "--format", "webp", "--bg-color", "81d4fa", "--crop",
                    "-o", "type=person")
    assert options_of(removebg) == [("format", "webp"), ("size", "hd"), ("bg_color", "81d4fa"), ("crop", "true"),
                                    ("type", "person")]
    render = args("render", "in", "out", "--source", "s", "--format", "jpg", "--bg-color", "#fff", "--width", "300",
                  "--height", "200", "--model", "u2net", "-o", "trim=alpha")
    assert options_of(render) == [("fm", "jpg"), ("w", "300"), ("h", "200"), ("bg", "fff"),
                                  ("bg-remove-model", "u2net"), ("trim", "alpha")]


@pytest.mark.parametrize("argv, message", [
    (["removebg", "IN", "OUT", "--key", "k", "-o", "format=zip"], "--option format: set by a flag"),
    (["render", "IN", "OUT", "--source", "s", "-o", "bg-remove-fallback=true"], "--option bg-remove-fallback"),
    (["removebg", "IN", "OUT"], "an API key is needed"),
    (["removebg", "IN", "IN/cut", "--key", "k"], "OUTPUT may not be INPUT or inside it"),
    (["removebg", "IN", "OUT", "--key", "k", "--server", "ftp://x"], "is not an http(s) URL"),
    (["removebg", "IN", "OUT", "--key", "k", "-j", "33"], "33 is not between 1 and 32"),
    (["removebg", "IN", "OUT", "--key", "k", "-o", "novalue"], "is not KEY=VALUE"),
    (["render", "IN", "OUT"], "the following arguments are required: --source"),
    (["render", "nowhere", "OUT", "--source", "s"], "is not a folder"),
])
def test_usage_errors_exit_2_naming_what_was_wrong(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CUTOUT_API_KEY", raising=False)
    (tmp_path / "IN").mkdir()
    argv = [str(tmp_path / a) if a in ("IN", "OUT", "IN/cut", "nowhere") else a for a in argv]
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "OUT").exists()


def test_the_scan_lists_what_is_sent_and_why_the_rest_is_not(tmp_path):
    for name in ["b.JPG", "a.jpeg", "sub/c.png", "a.png", ".hidden.jpg", "doc.pdf", "x.webp", ".thumbs/t.jpg"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    items, skipped = folder_scan(tmp_path, extension="png")
    assert [(i.rel, i.out_rel) for i in items] == [("a.jpeg", "a.png"), ("b.JPG", "b.png"), ("sub/c.png", "sub/c.png")]
    reasons = {s.rel: s.reason for s in skipped}
    assert reasons["a.png"] == "its output a.png would overwrite the one of a.jpeg"
    assert reasons[".hidden.jpg"] == "hidden file" and reasons[".thumbs/"] == "hidden folder"
    assert reasons["doc.pdf"].startswith("not a JPG or PNG") and reasons["x.webp"].startswith("not a JPG or PNG")
    # A file still being written (modified just now) waits for a later scan.
    assert folder_scan(tmp_path, extension="png", settle_seconds=60)[0] == []


def test_the_record_resumes_only_what_is_whole_and_current(tmp_path):
    (tmp_path / "in").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "in" / f"{name}.jpg").write_bytes(name.encode())
    items = {i.rel: i for i in folder_scan(tmp_path / "in", extension="png")[0]}
    log = DoneLog(out, "opts")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (out / items[name].out_rel).write_bytes(b"png")
        log.record(items[name])
    log.close()
    with (out / STATE_NAME).open("a") as state:
        state.write('{"rel": "torn')  # A run killed while appending.
    (out / "b.png").unlink()  # An output removed since.
    (tmp_path / "in" / "c.jpg").write_bytes(b"changed")  # An input changed since.
    items = {i.rel: i for i in folder_scan(tmp_path / "in", extension="png")[0]}
    again = DoneLog(out, "opts")
    assert [again.done(items[n]) for n in ("a.jpg", "b.jpg", "c.jpg")] == [True, False, False]
    assert not DoneLog(out, "other options").done(items["a.jpg"])
    assert '"torn' not in (out / STATE_NAME).read_text()  # Compacted on start.


def test_partial_files_of_dead_runs_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".a.png.{dead.pid}.partial"
    stale.write_bytes(b"half")
    mine = partial_path(tmp_path / "b.png")
    mine.write_bytes(b"half")
    assert partials_remove(tmp_path) == 1
    assert not stale.exists() and mine.exists()
