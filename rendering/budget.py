"""The output budget and the uncached-render slots: what one render may cost, checked before it starts."""

import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from core.errors import ServiceError, ServiceUnavailableError
from core.metrics import RENDER_SLOT_WAITS
from rendering.encode import accept_weights, format_resolve
from rendering.operations.mark import mark_drawn_on, mark_drawn_size, mark_tile_count
from rendering.operations.resize import asked_size, rect_size
from rendering.params import MAX_DIMENSION, RenderParams
from rendering.stage import StageContext
from rendering.stages import stages_size

# The setting that bounds each encoder's output pixels; JPEG has none beyond RENDER_MAX_OUTPUT_PIXELS.
ENCODER_LIMITS = {
    "png": "RENDER_MAX_PNG_PIXELS",
    "png32": "RENDER_MAX_PNG_PIXELS",
    "png8": "RENDER_MAX_PALETTE_PIXELS",
    "gif": "RENDER_MAX_PALETTE_PIXELS",
    "webp": "RENDER_MAX_WEBP_PIXELS",
    "avif": "RENDER_MAX_AVIF_PIXELS",
}
FORMAT_NAMES = {"png": "PNG", "png32": "PNG32", "png8": "PNG8", "gif": "GIF", "webp": "WebP", "avif": "AVIF"}
BUSY_RETRY_AFTER = 2  # Seconds: an uncached render here takes well under that.


class OutputTooLargeError(ServiceError):
    status_code = 422
    code = "output_too_large"
    default_message = "The render asked for is over this platform's output budget."


class MarkTooLargeError(OutputTooLargeError):
    code = "mark_too_large"


class TooManyMarkTilesError(OutputTooLargeError):
    code = "too_many_mark_tiles"


class AnimationTooLargeError(OutputTooLargeError):
    code = "animation_too_large"


class RenderBusyError(ServiceUnavailableError):
    code = "render_busy"
    default_message = "This server is busy with other new renders; try again shortly."
    retry_after = BUSY_RETRY_AFTER


@dataclass(frozen=True)
class Budget:
    """What a render within budget may do: the format to ask `format_resolve` for, a lower pixel
    ceiling (None: RENDER_MAX_OUTPUT_PIXELS alone), and when a size the URL asks for is served
    smaller, a line saying so (the X-Render-Capped header, rendering/views.py)."""

    fmt: str
    max_pixels: int | None = None
    capped: str = ""


def render_budget_check(*, size: tuple[int, int], params: RenderParams, requested: str, default: str,
                        accept: str, has_alpha: bool, mark_size: tuple[int, int] | None = None,
                        orientation: int = 1) -> Budget:
    """What the render may cost, from the decoded size and the parameters alone, before the work.

    An output over its encoder's pixel ceiling is scaled down to it, aspect ratio kept, as the
    output ceiling (RENDER_MAX_OUTPUT_PIXELS, 8192×8192) scales it: imgix caps sizes, it never
    refuses one, and every width of a srcset must load. When the URL asked for that size (w, h
    or ar), `capped` says what was asked, what is served and which ceiling bound it. auto=format
    chooses WebP over AVIF when the client accepts both and AVIF is over its ceiling while WebP's
    is higher (content negotiation picks the format that serves the most of what was asked).
    What stays refused is the watermark (its drawn size, its tile count): no srcset asks for
    those. `has_alpha` says whether the output may have transparency (true when unsure: it only
    chooses the stricter budget). `size` is the image's after trim (services: trim runs before
    this check), and the output counts the padding: what the encoder writes is the padded canvas.
    """
    own_size = rect_size(size, params.rect)
    # What every stage does to the size (rendering/stages.py), as it will do it.
    out = stages_size(size, params, StageContext(orientation=orientation))
    fmt = format_resolve(requested, params=params, has_alpha=has_alpha, default=default)
    setting, limit = _limit(fmt, params)
    if (out[0] * out[1] > limit and fmt == "avif" and params.auto_format
            and accept_weights(accept).get("image/webp", 0) and _limit("webp", params)[1] > limit):
        requested, (setting, limit) = "webp", _limit("webp", params)
    max_pixels = None
    if out[0] * out[1] > limit:
        max_pixels = limit
        out = stages_size(size, params, StageContext(orientation=orientation, max_pixels=limit))
    if mark_size is not None and mark_drawn_on(out, params):  # mark-if-min-*: not drawn, not counted.
        _mark_check(mark_size, out, params)
    return Budget(requested, max_pixels=max_pixels, capped=_capped(own_size, params, out, setting, max_pixels))


def _capped(size: tuple[int, int], params: RenderParams, out: tuple[int, int], setting: str,
            max_pixels: int | None) -> str:
    """"<asked> -> <served> (<ceiling>)" when the URL asked for a size and is served a smaller one."""
    asked = asked_size(size, params)
    if asked is None or asked == out:
        return ""
    if max_pixels is None:
        over_pixels = asked[0] * asked[1] > settings.RENDER_MAX_OUTPUT_PIXELS
        setting = "RENDER_MAX_OUTPUT_PIXELS" if over_pixels else f"{MAX_DIMENSION}x{MAX_DIMENSION}"
    return f"{asked[0]}x{asked[1]} -> {out[0]}x{out[1]} ({setting})"


def animation_budget_check(*, decoded: int, canvas: tuple[int, int], frames: int | None = None,
                           out: tuple[int, int] | None = None, fmt: str = "") -> None:
    """Refuses an animation whose frames cost more than the budget, before the work: the frames
    decoded (every frame up to the last one served, each composited on the whole canvas:
    RENDER_MAX_ANIMATION_DECODE_PIXELS), and, once the output's size is known, the frames every
    stage runs on and the encoder writes (RENDER_MAX_ANIMATION_PIXELS; for WebP, whose encoder
    costs five times GIF's a pixel, RENDER_MAX_WEBP_ANIMATION_PIXELS)."""
    limit = settings.RENDER_MAX_ANIMATION_DECODE_PIXELS
    pixels = decoded * canvas[0] * canvas[1]
    if pixels > limit:
        raise AnimationTooLargeError(
            f"Decoding {decoded} frames of {canvas[0]}×{canvas[1]} is {_mp(pixels)}, over the limit of {_mp(limit)} "
            "(RENDER_MAX_ANIMATION_DECODE_PIXELS); ask for fewer frames (frame=M-N) or a still image (frame=1)."
        )
    if frames is None or out is None:
        return
    setting = "RENDER_MAX_WEBP_ANIMATION_PIXELS" if fmt == "webp" else "RENDER_MAX_ANIMATION_PIXELS"
    limit = getattr(settings, setting)
    pixels = frames * out[0] * out[1]
    if pixels > limit:
        raise AnimationTooLargeError(
            f"{FORMAT_NAMES.get(fmt, fmt)} animation of {frames} frames of {out[0]}×{out[1]} is {_mp(pixels)}, "
            f"over the limit of {_mp(limit)} ({setting}); ask for a smaller size (w, h), fewer frames (interval, "
            "frame=M-N) or another format."
        )


def _limit(fmt: str, params: RenderParams) -> tuple[str, int]:
    if fmt == "webp" and params.lossless:
        setting = "RENDER_MAX_LOSSLESS_PIXELS"
    else:
        setting = ENCODER_LIMITS.get(fmt, "RENDER_MAX_OUTPUT_PIXELS")
    return setting, getattr(settings, setting)


def _mark_check(mark_size: tuple[int, int], base: tuple[int, int], params: RenderParams) -> None:
    drawn = mark_drawn_size(mark_size, base, params)
    limit = settings.RENDER_MAX_MARK_PIXELS
    if drawn[0] * drawn[1] > limit:
        raise MarkTooLargeError(
            f"The watermark would be {drawn[0]}×{drawn[1]} as drawn (sized and rotated), "
            f"{_mp(drawn[0] * drawn[1])}, over the limit of {_mp(limit)} (RENDER_MAX_MARK_PIXELS)."
        )
    tiles = mark_tile_count(base, drawn, params)
    if tiles > settings.RENDER_MAX_MARK_TILES:
        raise TooManyMarkTilesError(
            f"mark-tile=grid would draw the {drawn[0]}×{drawn[1]} watermark {tiles} times on a "
            f"{base[0]}×{base[1]} image, over the limit of {settings.RENDER_MAX_MARK_TILES} tiles "
            f"(RENDER_MAX_MARK_TILES); use a larger mark or mark-pad."
        )


def _mp(pixels: int) -> str:
    return f"{pixels:,} pixels"


# --- Uncached-render slots ------------------------------------------------------------------------

# Taken and given back under _slots_lock. A waiter is a lock of its own, held until the slot
# is handed to it: a slot given back goes to the longest waiter, never to a newcomer (FIFO).
_slots_lock = threading.Lock()
_slots_taken = 0
_waiters: deque = deque()
_holding = threading.local()


@contextmanager
def render_slot():
    """Holds one of the process's RENDER_MAX_CONCURRENT uncached-render slots. When none is free
    the render waits for one, first come first served, at most RENDER_SLOT_WAIT_SECONDS, with at
    most RENDER_SLOT_MAX_WAITERS waiting; past either it answers 503 `render_busy`. Each waiter
    holds a web thread, so the waiters are bounded well below WEB_THREADS (config/settings.py):
    the other threads serve cached hits, which never take a slot.

    A waiter holds nothing else: no call site takes a slot inside a transaction or another slot
    (the database connection it keeps is the thread's own, idle). A transaction's locks would
    be held while waiting, so inside one a render never waits; a slot asked for while holding
    one is a bug (it could wait for itself), refused loudly."""
    if getattr(_holding, "slot", False):
        raise RuntimeError("render_slot() is not re-entrant: this thread already holds a slot.")
    _slot_take()
    _holding.slot = True
    try:
        yield
    finally:
        _holding.slot = False
        _slot_give()


def _slot_take() -> None:
    global _slots_taken
    with _slots_lock:
        if _slots_taken < settings.RENDER_MAX_CONCURRENT and not _waiters:
            _slots_taken += 1
            return
        wait = settings.RENDER_SLOT_WAIT_SECONDS
        # No slot at all (RENDER_MAX_CONCURRENT=0) would never come: no wait for it either.
        if (len(_waiters) >= settings.RENDER_SLOT_MAX_WAITERS or wait <= 0 or settings.RENDER_MAX_CONCURRENT <= 0
                or transaction.get_connection().in_atomic_block):
            RENDER_SLOT_WAITS.labels(outcome="refused").observe(0)
            raise RenderBusyError()
        turn = threading.Lock()
        turn.acquire()
        _waiters.append(turn)
    started = time.monotonic()
    handed = turn.acquire(timeout=wait)
    if not handed:
        with _slots_lock:
            try:
                _waiters.remove(turn)
            except ValueError:
                handed = True  # Handed over between the timeout and this lock: the slot is ours.
    RENDER_SLOT_WAITS.labels(outcome="slot" if handed else "timed_out").observe(time.monotonic() - started)
    if not handed:
        raise RenderBusyError()


def _slot_give() -> None:
    global _slots_taken
    with _slots_lock:
        if _waiters and _slots_taken <= settings.RENDER_MAX_CONCURRENT:
            _waiters.popleft().release()  # The slot passes to the longest waiter, still counted.
        else:
            _slots_taken -= 1
