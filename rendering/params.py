"""Rendering URL parameters: imgix names and aliases in, one normalised value object out.

The parameters, their parsing and their defaults are the stages' (rendering/stages.py): this
module splits the query, decodes base64 values, and builds RenderParams, whose fields are the
stages' fields. An unparseable value is ignored (the default applies) and a number is clamped to
its range; only values whose meaning cannot be guessed are an error (400)."""

import base64
import binascii
import dataclasses
import functools
from urllib.parse import unquote_plus

from django.conf import settings

from rendering.encode import format_negotiate
from rendering.stage import Stage
from rendering.stages import ALIASES, FIELDS, KEYED_FIELDS, stages_active, stages_effective, stages_parse  # noqa: F401
from rendering.values import MAX_DIMENSION, Dim, ParamError  # noqa: F401 (re-exported)


class _RenderParamsMethods:
    @property
    def auto_format(self) -> bool:
        return "format" in self.auto

    @property
    def auto_compress(self) -> bool:
        return "compress" in self.auto

    @property
    def has_operations(self) -> bool:
        """Whether anything besides encoding changes the pixels."""
        return stages_active(self)

    def effective(self, fmt: str) -> dict:
        """The keyed fields as they act for the output format `fmt` (as `format_negotiate` gives
        it; "" when it is chosen by the image), each stage resetting what cannot change its output
        (a focal point without crop=focalpoint, mark-* without a mark, dpr without a size, q for
        PNG, …): what the render cache is keyed by, so ineffective parameters and defaults spelled
        out make no new stored render."""
        if fmt == "json":
            # The source's metadata (with its faces, for faces=1), nothing else.
            return stages_effective(RenderParams(bg_remove=self.bg_remove, faces=self.faces), fmt)
        return stages_effective(self, fmt)

    def canonical(self, fmt: str | None = None) -> str:
        """The same string for two URLs that do the same thing: the render cache key's core.
        `fmt` is the negotiated output format; without it, the URL's own (no Accept header)."""
        if fmt is None:
            fmt = format_negotiate(self, "")
        memo_key = (fmt, settings.RENDER_DEFAULT_QUALITY)
        # Memoised per instance (instances are immutable and shared by `params_parse`).
        memo = self.__dict__.setdefault("_canonical", {})
        cached = memo.get(memo_key)
        if cached is None:
            # Only the fields away from their defaults: short keys, and a new stage (whose fields
            # are all at their defaults in existing URLs) leaves every existing key as it was.
            effective = self.effective(fmt)
            values = [("fmt", fmt)] + [(name, _stable(effective[name])) for name in KEYED_FIELDS
                                       if effective[name] != FIELDS[name]]
            cached = memo[memo_key] = "&".join(f"{k}={v!r}" for k, v in values)
        return cached


def _stable(value):
    return tuple(sorted(value)) if isinstance(value, frozenset) else value


# One field per stage field, with its default (rendering/stages.py).
RenderParams = dataclasses.make_dataclass(
    "RenderParams",
    [(name, object, dataclasses.field(default=default)) for name, default in FIELDS.items()],
    bases=(_RenderParamsMethods,),
    frozen=True,
)
RenderParams.__module__ = __name__
RenderParams.__doc__ = "A render's parameters: one field per stage field (rendering/stages.py)."


def _decode64(name: str, value: str) -> str:
    """Strict base64url: only its alphabet (Python's decoder would skip anything else), a length
    that can end a quantum, and zero bits after the last byte (RFC 4648 §3.5), so each text has
    exactly one spelling; then UTF-8. Anything else would be read as some other value."""
    try:
        if any(ch in value for ch in "+/="):
            raise ValueError
        padded = value + "=" * (-len(value) % 4)
        data = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        if base64.urlsafe_b64encode(data).decode("ascii") != padded:
            raise ValueError  # Non-zero bits after the last byte.
        return data.decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        raise ParamError(f"The value of {name}64 is not valid base64url (RFC 4648 §5, no padding).") from None


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Splits the raw query; values are percent-decoded before any comma list is split."""
    pairs = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = unquote_plus(name).lower(), unquote_plus(value)
        if name.endswith("64") and name != "auto64":
            name, value = name[:-2], _decode64(name[:-2], value)
        pairs.append((ALIASES.get(name, name), value))
    return pairs


def mark_query_canonical(query: str) -> str:
    """What the query of a mark on the source means (its own rendering's parameters), in one
    spelling; "" when it changes nothing (a cache-busting `?v=2`): the mark is then the file."""
    if not query:
        return ""
    canonical = params_parse(query).canonical()
    return "" if canonical == _IDENTITY.canonical() else canonical


@functools.lru_cache(maxsize=4096)
def params_parse(raw_query: str) -> RenderParams:
    """The parameters of a query string. Memoised: a page asks for the same few URLs again and
    again, and the result is immutable. A query that fails to parse raises every time."""
    return _params_parse(raw_query)


def _params_parse(raw_query: str) -> RenderParams:
    values: dict[str, str] = {}
    for name, value in query_pairs(raw_query):
        if name == "auto" and "auto" in values:
            # The one parameter that combines by repetition (auto=format&auto=compress).
            values["auto"] += "," + value
        else:
            values[name] = value  # Last one wins.
    return RenderParams(**stages_parse(values))


_IDENTITY = RenderParams()
Stage.query_canonical = staticmethod(mark_query_canonical)
