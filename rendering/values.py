"""The kinds of value a rendering parameter takes, each a parser: raw text in, a value or None out.

A parser answers None for a value it cannot read, and the parameter keeps its default: imgix
ignores a malformed value rather than failing the image. A number is clamped to the range the
parameter allows. Only values whose meaning cannot be guessed (bad base64, a malformed rect)
raise ParamError (400)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import BadRequestError
from rendering.colors import color_parse

MAX_DIMENSION = 8192
TRUE_VALUES = {"true", "1"}
FALSE_VALUES = {"false", "0"}

Parser = Callable[[str], Any]


class ParamError(BadRequestError):
    code = "bad_parameter"


@dataclass(frozen=True)
class Dim:
    """A size: pixels, or a ratio (0–1] of a reference size (the source, or the mark itself)."""

    value: float
    ratio: bool = False

    def pixels(self, reference: int) -> int:
        return max(1, round(self.value * reference)) if self.ratio else int(self.value)


def number_parse(value: str) -> float | None:
    try:
        number = float(value.strip())
    except (ValueError, AttributeError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def boolean(value: str) -> bool | None:
    value = value.strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    return None


def integer(low: int, high: int) -> Parser:
    def parse(value: str) -> int | None:
        number = number_parse(value)
        return None if number is None else min(max(round(number), low), high)
    return parse


def decimal(low: float, high: float) -> Parser:
    def parse(value: str) -> float | None:
        number = number_parse(value)
        return None if number is None else min(max(number, low), high)
    return parse


def dimension(low: int = 2, high: int = MAX_DIMENSION) -> Parser:
    """Pixels (clamped to low–high) or a ratio: a value ≤ 1 (so `w=1` is the whole source)."""
    def parse(value: str) -> Dim | None:
        number = number_parse(value)
        if number is None or number <= 0:
            return None
        if number <= 1:
            return Dim(number, ratio=True)
        return Dim(min(max(round(number), low), high))
    return parse


def choice(choices, aliases: dict | None = None) -> Parser:
    def parse(value: str) -> str | None:
        value = value.strip().lower()
        value = (aliases or {}).get(value, value)
        return value if value in choices else None
    return parse


def items(choices) -> Parser:
    """A comma list of known words, each once, in the order given; None when none is known."""
    def parse(value: str) -> tuple | None:
        found = tuple(dict.fromkeys(v for v in (v.strip().lower() for v in value.split(",")) if v in choices))
        return found or None
    return parse


def color(value: str) -> tuple | None:
    return color_parse(value)


def text(value: str) -> str | None:
    value = value.strip()
    return value or None
