"""Rendering URL parameters: imgix names and aliases in, one normalised value object out."""

import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from config.exceptions import BadRequestError

# imgix's aliases (research §0): the left name is read as the right one.
ALIASES = {
    "background-remove": "bg-remove",
    "width": "w",
    "height": "h",
    "f": "fit",
}

FORMATS = {"jpg", "pjpg", "png", "webp", "avif", "gif"}
FORMAT_ALIASES = {"jpeg": "jpg"}
TRUE_VALUES = {"true", "1"}
FALSE_VALUES = {"false", "0"}


class ParamError(BadRequestError):
    code = "bad_parameter"


@dataclass(frozen=True)
class RenderParams:
    bg_remove: bool = False
    bg_remove_model: str = ""
    fm: str = ""
    q: int | None = None
    auto: frozenset = field(default_factory=frozenset)

    @property
    def auto_format(self) -> bool:
        return "format" in self.auto

    def canonical(self) -> str:
        """The same string for two URLs that mean the same thing: the render cache key's core."""
        parts = [
            f"bg-remove={int(self.bg_remove)}",
            f"fm={self.fm}",
            f"q={'' if self.q is None else self.q}",
            f"auto={','.join(sorted(self.auto & {'format', 'compress'}))}",
        ]
        return "&".join(parts)


def _decode64(name: str, value: str) -> str:
    try:
        padded = value + "=" * (-len(value) % 4)
        if any(ch in value for ch in "+/="):
            raise ValueError
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
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


def _parse_bool(value: str, default: bool) -> bool:
    value = value.strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    return default


def _parse_int(value: str, low: int, high: int) -> int | None:
    # An unparseable number is ignored (the default applies); an out-of-range one is clamped.
    try:
        number = round(float(value))
    except (ValueError, OverflowError):
        return None
    return min(max(number, low), high)


def _parse_fm(value: str) -> str:
    value = FORMAT_ALIASES.get(value.strip().lower(), value.strip().lower())
    return value if value in FORMATS else ""


def params_parse(raw_query: str) -> RenderParams:
    values: dict[str, str] = {}
    auto: set[str] = set()
    for name, value in query_pairs(raw_query):
        if name == "auto":
            # The one parameter that combines by repetition (auto=format&auto=compress).
            auto.update(v.strip().lower() for v in value.split(",") if v.strip())
        else:
            values[name] = value  # Last one wins.
    return RenderParams(
        bg_remove=_parse_bool(values.get("bg-remove", ""), False),
        bg_remove_model=values.get("bg-remove-model", "").strip().lower(),
        fm=_parse_fm(values.get("fm", "")),
        q=_parse_int(values["q"], 0, 100) if "q" in values else None,
        auto=frozenset(auto),
    )
