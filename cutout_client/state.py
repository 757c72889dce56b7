"""What a run finished, kept beside the outputs so that the next run resumes: one JSON line per file."""

import json
import os
import threading
from pathlib import Path

from cutout_client.files import Item

STATE_NAME = ".cutout-done.jsonl"


class DoneLog:
    """`OUTPUT/.cutout-done.jsonl`. A line is appended only once its output is renamed into place,
    so a file killed mid-way has no line and is made again; a line whose input changed (size or
    mtime), whose options differ, or whose output is gone does not count either. A run killed while
    appending leaves at most one torn last line, which is ignored."""

    def __init__(self, out_dir: Path, options: str):
        self.path = out_dir / STATE_NAME
        self.out_dir = out_dir
        self.options = options
        self._lock = threading.Lock()
        self.entries = self._read()
        self._compact()
        self._file = self.path.open("a", encoding="utf-8")

    def _read(self) -> dict:
        entries = {}
        if not self.path.exists():
            return entries
        with self.path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                    entries[entry["rel"]] = entry
                except (ValueError, KeyError, TypeError):
                    continue  # A torn line of a killed run.
        return entries

    def _compact(self) -> None:
        """The last line of each file only, written atomically (the log grows with --watch)."""
        partial = self.path.with_name(f"{STATE_NAME}.{os.getpid()}.tmp")
        partial.write_text("".join(json.dumps(e) + "\n" for e in self.entries.values()), encoding="utf-8")
        os.replace(partial, self.path)

    def done(self, item: Item) -> bool:
        entry = self.entries.get(item.rel)
        return (entry is not None and entry.get("size") == item.size and entry.get("mtime_ns") == item.mtime_ns
                and entry.get("options") == self.options and entry.get("out") == item.out_rel
                and (self.out_dir / item.out_rel).is_file())

    def record(self, item: Item) -> None:
        entry = {"rel": item.rel, "size": item.size, "mtime_ns": item.mtime_ns, "out": item.out_rel,
                 "options": self.options}
        with self._lock:
            self.entries[item.rel] = entry
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
