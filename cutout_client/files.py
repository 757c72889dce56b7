"""The input folder as work: which files are sent, which are skipped and why, and where each output goes."""

import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# By name, as the server's own demo lists them: the server judges the content (a text file named
# .jpg is sent, and its refusal is reported with the server's reason).
SENT_SUFFIXES = {".jpg", ".jpeg", ".png"}
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class Item:
    rel: str  # The path below the input folder, with "/" (also the path in a source).
    path: Path
    size: int
    mtime_ns: int
    out_rel: str

    @property
    def key(self) -> tuple:
        """What identifies this version of the file: a change of content is a new key."""
        return self.rel, self.size, self.mtime_ns


@dataclass(frozen=True)
class Skip:
    rel: str
    reason: str


def output_name(rel: str, extension: str) -> str:
    return str(PurePosixPath(rel).with_suffix(f".{extension}"))


def folder_scan(root: Path, *, extension: str, settle_seconds: float = 0.0) -> tuple[list[Item], list[Skip]]:
    """Every regular file below `root`, sorted: JPG/PNG ones as items, the others with their
    reason. A file modified less than `settle_seconds` ago is left for a later scan (it may still
    be being written)."""
    items, skipped, outputs = [], [], {}
    now = time.time_ns()
    for folder, dirs, names in os.walk(root):
        for hidden in sorted(d for d in dirs if d.startswith(".")):
            skipped.append(Skip((Path(folder) / hidden).relative_to(root).as_posix() + "/", "hidden folder"))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                skipped.append(Skip(os.fsdecode(rel).encode("utf-8", "replace").decode(),
                                    "its name is not valid UTF-8, so it has no URL"))
                continue
            if name.startswith("."):
                skipped.append(Skip(rel, "hidden file"))
                continue
            if path.suffix.lower() not in SENT_SUFFIXES:
                skipped.append(Skip(rel, "not a JPG or PNG (by its name): only .jpg, .jpeg and .png are sent"))
                continue
            try:
                stat = path.stat()
            except OSError as exc:
                skipped.append(Skip(rel, f"cannot be read: {exc.strerror}"))
                continue
            if not path.is_file():
                skipped.append(Skip(rel, "not a regular file"))
                continue
            if settle_seconds and now - stat.st_mtime_ns < settle_seconds * 1e9:
                continue
            out_rel = output_name(rel, extension)
            if out_rel in outputs:
                skipped.append(Skip(rel, f"its output {out_rel} would overwrite the one of {outputs[out_rel]}"))
                continue
            outputs[out_rel] = rel
            items.append(Item(rel=rel, path=path, size=stat.st_size, mtime_ns=stat.st_mtime_ns, out_rel=out_rel))
    return items, skipped


def partial_path(target: Path) -> Path:
    """Where `target` is written before it is renamed into place (same folder, so the rename is atomic)."""
    return target.with_name(f".{target.name}.{os.getpid()}{PARTIAL_SUFFIX}")


def partials_remove(root: Path) -> int:
    """Removes the partial files that killed runs left (their process is gone); how many."""
    removed = 0
    for path in root.rglob(f".*{PARTIAL_SUFFIX}"):
        pid = path.name.removesuffix(PARTIAL_SUFFIX).rpartition(".")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
