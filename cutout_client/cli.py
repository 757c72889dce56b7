"""`cutout removebg|render INPUT OUTPUT`: every JPG/PNG of a folder cut out by a Cutout server, in
parallel, resumable, optionally watching the folder; a summary of what failed and why."""

import argparse
import concurrent.futures
import hashlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from tqdm import tqdm

from cutout_client.calls import CallError, Interrupted, RemoveBgClient, RenderClient, Retry
from cutout_client.files import Item, folder_scan, partials_remove
from cutout_client.state import DoneLog

MAX_JOBS = 32
MAX_RETRIES = 20
SIZES = ["preview", "small", "regular", "medium", "hd", "full", "4k", "auto"]
FORMATS = ["png", "webp", "jpg"]
# What the flags set: an --option may not set it a second way.
REMOVEBG_OWN = {"image_file", "image_file_b64", "image_url", "size", "format", "bg_color", "crop"}
RENDER_OWN = {"bg-remove", "fm", "w", "h", "bg", "bg-remove-model", "s",
              # The original instead of a cutout while the job runs: never a batch's output.
              "bg-remove-fallback"}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _bounded(low: int, high: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{number} is not between {low} and {high}")
        return number

    return parse


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < number <= 86400:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 86400 seconds")
    return number


def _option(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r} is not KEY=VALUE")
    return key, val


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("input", type=Path, help="the folder of images (searched recursively)")
    common.add_argument("output", type=Path, help="where the cutouts go, under the same relative paths")
    common.add_argument("--server", default=os.environ.get("CUTOUT_SERVER", "http://127.0.0.1:8000"),
                        help="the server's base URL (default: $CUTOUT_SERVER or http://127.0.0.1:8000)")
    common.add_argument("-j", "--jobs", type=_bounded(1, MAX_JOBS), default=4,
                        help=f"files in flight at once, 1–{MAX_JOBS} (default 4)")
    common.add_argument("--format", choices=FORMATS, default="png", help="output format (default png)")
    common.add_argument("--bg-color", metavar="COLOR", help="a background colour instead of transparency (hex)")
    common.add_argument("-o", "--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                        help="any other option of the API, sent as it is (repeatable); the server refuses "
                             "one it does not know")
    common.add_argument("--retries", type=_bounded(0, MAX_RETRIES), default=6,
                        help="retries per file after a 429, a 503 or a lost connection (default 6)")
    common.add_argument("--timeout", type=_seconds, default=120.0,
                        help="seconds to wait for one answer (default 120)")
    common.add_argument("--watch", action="store_true",
                        help="keep watching INPUT for new and changed files until Ctrl-C or SIGTERM")
    common.add_argument("--interval", type=_seconds, default=2.0,
                        help="with --watch: seconds between looks at the folder (default 2)")
    common.add_argument("--settle", type=float, default=1.0,
                        help="with --watch: a file is sent once unchanged this many seconds (default 1)")
    common.add_argument("--no-progress", action="store_true",
                        help="a line per file instead of the progress bar (the default when not a terminal)")

    top = argparse.ArgumentParser(prog="cutout", description="Every JPG/PNG of a folder cut out by a Cutout server.")
    modes = top.add_subparsers(dest="mode", required=True, metavar="{removebg,render}")
    removebg = modes.add_parser("removebg", parents=[common],
                                help="upload each file to the remove.bg-compatible API (POST /v1.0/removebg)")
    removebg.add_argument("--key", default=os.environ.get("CUTOUT_API_KEY"),
                          help="an API key with the removebg scope (default: $CUTOUT_API_KEY, which keeps it "
                               "out of the process list)")
    removebg.add_argument("--size", choices=SIZES, help="remove.bg's size (the server's default: preview)")
    removebg.add_argument("--crop", action="store_true", help="crop to the subject (remove.bg's crop=true)")
    removebg.add_argument("--max-bytes", type=_bounded(1, 1 << 30), default=12 * 1024 * 1024,
                          help="files larger are not sent (default 12 MiB, the server's default ORIGIN_MAX_BYTES)")
    render = modes.add_parser("render", parents=[common],
                              help="files already in a source: GET /render/{source}/{path}?bg-remove=true")
    render.add_argument("--source", required=True, help="the source's slug; INPUT is its folder")
    render.add_argument("--prefix", default="",
                        help="INPUT's path inside the source, when it is a folder of it (default: its root)")
    render.add_argument("--token", default=os.environ.get("CUTOUT_SIGN_TOKEN"),
                        help="the source's secure token, to sign the URLs (default: $CUTOUT_SIGN_TOKEN)")
    render.add_argument("--width", type=_bounded(1, 8192), help="at most this wide (w)")
    render.add_argument("--height", type=_bounded(1, 8192), help="at most this high (h)")
    render.add_argument("--model", help="the model (bg-remove-model; the source's by default)")
    render.add_argument("--job-timeout", type=_seconds, default=600.0,
                        help="seconds to wait for one cutout to be made (default 600)")
    return top


def options_of(args) -> list[tuple[str, str]]:
    """The API's own fields (remove.bg's) or parameters (rendering's) the flags stand for."""
    if args.mode == "removebg":
        fields = [("format", args.format)]
        fields += [("size", args.size)] if args.size else []
        fields += [("bg_color", args.bg_color)] if args.bg_color else []
        fields += [("crop", "true")] if args.crop else []
        own = REMOVEBG_OWN
    else:
        fields = [("fm", args.format)]
        fields += [("w", str(args.width))] if args.width else []
        fields += [("h", str(args.height))] if args.height else []
        fields += [("bg", args.bg_color.lstrip("#"))] if args.bg_color else []
        fields += [("bg-remove-model", args.model)] if args.model else []
        own = RENDER_OWN
    clash = sorted({key for key, _ in args.option} & own)
    if clash:
        raise ValueError(f"--option {', '.join(clash)}: set by a flag of its own (or not allowed in a batch)")
    return fields + list(args.option)


class Run:
    """One invocation: scans, sends, records, reports."""

    def __init__(self, args, client, fields, stop: threading.Event):
        self.args = args
        self.client = client
        self.extension = args.format
        digest = json.dumps([args.mode, args.server, getattr(args, "source", None), getattr(args, "prefix", None),
                             fields])
        self.log = DoneLog(args.output, hashlib.sha256(digest.encode()).hexdigest()[:16])
        self.stop = stop
        self.signal = None
        self.lock = threading.Lock()
        self.print_lock = threading.Lock()
        self.in_flight: set[tuple] = set()
        self.failed: dict[str, tuple[tuple, CallError]] = {}
        self.skipped: dict[str, str] = {}
        self.done = self.resumed = self.retries = self.interrupted = 0
        self.bar = tqdm(total=0, unit="file", file=sys.stderr, dynamic_ncols=True, leave=True,
                        disable=args.no_progress or not sys.stderr.isatty())

    # --- Reporting

    def say(self, line: str) -> None:
        """A file's line: on stdout without the bar; with it, only what needs reading (failures)."""
        with self.print_lock:
            if self.bar.disable:
                print(line, flush=True)
            elif not line.startswith("ok"):
                self.bar.write(line, file=sys.stderr)

    def summary(self, seconds: float) -> str:
        rate = self.done / seconds if seconds else 0.0
        lines = [f"cutout: {self.done} cut out, {len(self.failed)} failed, {len(self.skipped)} skipped, "
                 f"{self.resumed} already done; {seconds:.1f} s, {rate:.2f} files/s, {self.retries} retries"]
        if self.failed:
            lines.append(f"Failed ({len(self.failed)}):")
            lines += [f"  {rel}: {error}" for rel, (_, error) in sorted(self.failed.items())]
        if self.skipped:
            lines.append(f"Skipped ({len(self.skipped)}):")
            lines += [f"  {rel}: {reason}" for rel, reason in sorted(self.skipped.items())]
        if self.cut_short():
            lines.append(f"Interrupted: {self.interrupted} file(s) not done; the same command again resumes.")
        return "\n".join(lines)

    # --- Work

    def one(self, item: Item) -> None:
        started = time.monotonic()
        try:
            if self.stop.is_set():
                raise Interrupted()
            outcome = self.client.cut(item, self.args.output / item.out_rel)
        except Interrupted:
            with self.lock:
                self.interrupted += 1
            return
        except CallError as error:
            self._failed(item, error)
        except OSError as exc:
            self._failed(item, CallError(None, "local_error", str(exc)))
        except Exception as exc:  # Never lost in the pool: reported as this file's failure.
            traceback.print_exc()
            self._failed(item, CallError(None, "client_error", repr(exc)))
        else:
            self.log.record(item)
            with self.lock:
                self.done += 1
                self.retries += outcome.retries
                self.failed.pop(item.rel, None)
            again = f", {outcome.retries} {'retry' if outcome.retries == 1 else 'retries'}" if outcome.retries else ""
            self.say(f"ok    {item.rel} -> {item.out_rel} ({time.monotonic() - started:.2f} s{again})")
        finally:
            with self.lock:
                self.in_flight.discard(item.key)
            self.bar.update(1)
            self.bar.set_postfix(failed=len(self.failed), refresh=False)

    def _failed(self, item: Item, error: CallError) -> None:
        with self.lock:
            self.failed[item.rel] = (item.key, error)
            self.retries += error.retries
        self.say(f"FAIL  {item.rel}: {error}")

    def scan(self, first: bool) -> list[Item]:
        settle = self.args.settle if self.args.watch else 0.0
        items, skipped = folder_scan(self.args.input, extension=self.extension, settle_seconds=settle)
        for skip in skipped:
            if self.skipped.get(skip.rel) != skip.reason:
                self.say(f"skip  {skip.rel}: {skip.reason}")
        self.skipped = {skip.rel: skip.reason for skip in skipped}  # As the folder is now.
        todo = []
        with self.lock:
            for item in items:
                if item.key in self.in_flight or self.failed.get(item.rel, (None,))[0] == item.key:
                    continue  # Under way, or failed as it is now: sent again once it changes.
                if self.log.done(item):
                    self.resumed += first
                    continue
                todo.append(item)
        return todo

    def execute(self) -> int:
        started = time.monotonic()
        slots = threading.BoundedSemaphore(2 * self.args.jobs)  # Files listed ahead of the pool, at most.
        futures = set()
        with concurrent.futures.ThreadPoolExecutor(self.args.jobs, thread_name_prefix="cutout") as pool:
            first = True
            while not self.stop.is_set():
                todo = self.scan(first)
                first = False
                self.bar.total += len(todo)
                self.bar.refresh()
                for item in todo:
                    while not slots.acquire(timeout=0.2):
                        if self.stop.is_set():
                            break
                    if self.stop.is_set():
                        with self.lock:
                            self.interrupted += 1
                        continue
                    with self.lock:
                        self.in_flight.add(item.key)
                    future = pool.submit(self.one, item)
                    future.add_done_callback(lambda _: slots.release())
                    futures.add(future)
                futures = {f for f in futures if not f.done()}
                if not self.args.watch or self.stop.wait(self.args.interval):
                    break
            while futures:  # Short waits, so that a signal is handled at once.
                futures = concurrent.futures.wait(futures, timeout=0.2).not_done
        self.bar.close()
        self.log.close()
        print(self.summary(time.monotonic() - started), flush=True)
        if self.cut_short():
            return EXIT_SIGNAL[self.signal]
        return EXIT_FAILED if self.failed else EXIT_OK

    def cut_short(self) -> bool:
        """A batch (not --watch) stopped by a signal before every file was done."""
        return self.signal is not None and not self.args.watch and self.interrupted > 0

    def on_signal(self, signum, _frame) -> None:
        if self.stop.is_set():
            print("cutout: stopped at once; partial files are removed by the next run", file=sys.stderr, flush=True)
            os._exit(EXIT_SIGNAL.get(signum, 1))
        self.signal = signum
        self.stop.set()
        print(f"cutout: stopping ({signal.Signals(signum).name}): no new files, waiting for those in flight "
              f"(once more to stop at once)", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    try:
        fields = options_of(args)
        _check(args)
    except ValueError as exc:
        top.error(str(exc))
    args.output.mkdir(parents=True, exist_ok=True)
    partials_remove(args.output)
    http = urllib3.PoolManager(num_pools=4, maxsize=args.jobs, block=True)
    stop = threading.Event()
    retry = Retry(retries=args.retries, stop=stop)
    common = dict(server=args.server, http=http, retry=retry, timeout=args.timeout, extension=args.format)
    if args.mode == "removebg":
        client = RemoveBgClient(key=args.key, fields=fields, max_bytes=args.max_bytes, **common)
    else:
        client = RenderClient(source=args.source, prefix=args.prefix.strip("/"), params=fields, token=args.token,
                              job_timeout=args.job_timeout, **common)
    run = Run(args, client, fields, stop)
    for signum in EXIT_SIGNAL:
        signal.signal(signum, run.on_signal)
    if args.watch:
        print(f"cutout: watching {args.input} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    return run.execute()


def _check(args) -> None:
    if args.mode == "removebg" and not args.key:
        raise ValueError("an API key is needed: --key, or the CUTOUT_API_KEY variable")
    if urlsplit(args.server).scheme not in ("http", "https") or not urlsplit(args.server).netloc:
        raise ValueError(f"--server {args.server!r} is not an http(s) URL")
    if not args.input.is_dir():
        raise ValueError(f"{args.input} is not a folder")
    inp, out = args.input.resolve(), args.output.resolve()
    if out == inp or inp in out.parents:
        raise ValueError("OUTPUT may not be INPUT or inside it: its cutouts would be taken as new images")
    if args.settle < 0:
        raise ValueError("--settle may not be negative")
