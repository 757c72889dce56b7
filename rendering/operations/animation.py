"""Animation: which frames of an animated GIF or WebP origin are served, in what order, how fast, how often.

No pixel work of its own: the render (rendering/services.py) decodes the frames these fields
select, runs every pixel stage on each, and the encoder (rendering/encode.py) writes them as one
animation. An animation is served only in a format that can animate (GIF, WebP); in any other
the first selected frame is the still served."""

from __future__ import annotations

import re

from core.errors import ServiceError
from rendering.stage import Param, Stage
from rendering.values import boolean, integer

ANIMATED_FORMATS = {"gif", "webp"}  # The output formats written as animations.
ANIMATED_KINDS = {"gif", "webp"}  # The origin types decoded as animations.
MAX_FRAME = 1_000_000  # Past any origin a frame cap lets through; keeps the numbers small.
# GIF delays are in hundredths of a second; browsers slow a delay under 2 of them to 10.
GIF_MIN_DURATION_MS = 20

_FRAME = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$|^\s*(\d+)\s*$")


def _frame(value: str) -> tuple[int, int | None] | None:
    """imgix's frame selection, 1-based: `N` (that frame), `M-N`, `M-` (to the last frame), `-N`
    (from the first): (first, last or None for the last). Unreadable: None (every frame)."""
    found = _FRAME.match(value)
    if found is None:
        return None
    low, high, single = found.groups()
    if single is not None:
        number = min(max(int(single), 1), MAX_FRAME)
        return number, number
    if not low and not high:
        return None
    first = min(max(int(low), 1), MAX_FRAME) if low else 1
    last = min(max(int(high), 1), MAX_FRAME) if high else None
    if last is not None and last < first:
        first, last = last, first
    return first, last


class NoFramesError(ServiceError):
    status_code = 422
    code = "no_frames"


class AnimationStage(Stage):
    name = "animation"
    pixels = False
    params = (
        Param("frame", _frame, differs="a frame past the last, or a selection that leaves no frame, is a 422"),
        Param("fps", integer(1, 60), differs="any integer, clamped to 1–60 (GIF stores hundredths of a second)"),
        Param("loop", integer(0, 65535), 0, differs="GIF stores it in 16 bits: clamped to 0–65535"),
        Param("reverse", boolean, False),
        Param("skip", integer(1, MAX_FRAME),
              differs="drops frames 1, 1+N, 1+2N, …; a skip that would leave no frame is a 422"),
        Param("interval", integer(1, MAX_FRAME)),
    )

    def effective(self, p, fmt):
        """A still output (one frame asked for, or any format but GIF and WebP) is the frame the
        selection starts at: the other fields change nothing. "" (the origin's format) may animate."""
        single = p.frame is not None and p.frame[0] == p.frame[1]
        if (fmt in ANIMATED_FORMATS or fmt == "") and not single:
            values = super().effective(p, fmt)
            if p.frame == (1, None):
                values["frame"] = None  # Every frame, spelled out.
            return values
        still = {field: default for field, default in self.fields.items()}
        first = 1 if p.frame is None else p.frame[0]
        still["frame"] = None if first == 1 else (first, first)  # Frame 1 is any still's.
        return still


def animation_output(params, fmt: str, kind: str | None) -> bool:
    """Whether the render may be an animation: the format negotiated (`fmt`, "" for the origin's
    own) can animate, the origin's type can, and no single frame is asked for."""
    if kind not in ANIMATED_KINDS or params.bg_remove or params.fm == "json":
        return False
    if fmt == "":
        fmt = "" if params.auto_compress else kind  # auto=compress: PNG or JPEG, never animated.
    if fmt not in ANIMATED_FORMATS:
        return False
    return params.frame is None or params.frame[0] != params.frame[1]


def animation_plan(count: int, params, *, animated: bool) -> list[int]:
    """The 0-based indices of the frames served, in order, for an origin of `count` frames: one
    (where the selection starts) for a still output, else `animation_select`'s. A selection that
    leaves no frame is refused (422), as a frame past the last one is."""
    if not animated:
        first = 1 if params.frame is None else params.frame[0]
        if first > count:
            raise NoFramesError(f"frame={first} is past the last frame of the origin, which has {count}.")
        return [first - 1]
    indices = animation_select(count, params)
    if not indices:
        raise NoFramesError(f"The frames asked for (frame, interval, skip) leave none of the origin's {count}.")
    return indices


def animation_select(count: int, params) -> list[int]:
    """The 0-based indices of the frames served, in the order served, for an origin of `count`
    frames: frame's range, then interval (every Nth, from the first), skip (every Nth dropped,
    from the first), then reverse. Empty when nothing is left."""
    first, last = (1, None) if params.frame is None else params.frame
    indices = list(range(first - 1, min(count, last or count)))
    if params.interval:
        indices = indices[::params.interval]
    if params.skip:
        indices = [index for n, index in enumerate(indices) if n % params.skip]
    if params.reverse:
        indices.reverse()
    return indices


def animation_durations(durations: list[int], params) -> list[int]:
    """Each served frame's duration in milliseconds: fps replaces every frame's own delay."""
    if params.fps:
        return [round(1000 / params.fps)] * len(durations)
    return durations


STAGE = AnimationStage()
