"""What a stage is: one operation of a render, declaring everything the rest of the system derives.

A stage names the URL parameters it reads (imgix's names and aliases, how each value parses,
its default), the fields it adds to RenderParams, which of them change the image (the render
cache's key, in their canonical form), whether it has anything to do, what it does to the
output's size (for the budget, before any pixel work) and how it applies to pixels. The parser,
the cache key, the "anything to do?" shortcut, the decode size and the budget all come from the
list of stages (rendering/stages.py); a parameter no stage declares is not read at all."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from rendering.values import Parser

if TYPE_CHECKING:
    from PIL import Image

Box = tuple[int, int]
# rendering.params.RenderParams, which is built from the stages (so not imported here): one
# attribute per field of every stage.
RenderParams = Any


@dataclass(frozen=True)
class Param:
    """One URL parameter. `field` is the RenderParams attribute it sets (its name with `-` as `_`
    by default). `parse` reads the raw value (None: the stage's own `parse` reads it, for a value
    that depends on another). `keyed` False: not part of what the image looks like (access, a
    choice of response), so not in the cache key."""

    name: str
    parse: Parser | None = None
    default: Any = None
    aliases: tuple[str, ...] = ()
    field: str = ""
    keyed: bool = True
    # Where we differ from imgix's description of the parameter, for docs/rendering.md's table.
    differs: str = ""

    def __post_init__(self):
        if not self.field:
            object.__setattr__(self, "field", self.name.replace("-", "_"))


@dataclass(frozen=True)
class StageContext:
    """What stages need beyond the image and the parameters."""

    mark: Any = None  # The decoded watermark, when `mark` is asked for.
    blend: Any = None  # The decoded blend image, when `blend` names an image.
    mask: Any = None  # The decoded mask image, when `mask` names an image.
    # The encoder's pixel budget for an image served at its own size (budget.py).
    max_pixels: int | None = None
    # The source's EXIF orientation, which decoding already applied (1: none); `orient` replaces it.
    orientation: int = 1
    # For the frames of one animation (all one size): where a stage keeps work that depends only
    # on the size and the parameters (a watermark sized and tiled), done once, not per frame.
    memo: dict | None = None


class Stage:
    """A render operation. Subclasses set `name` and `params` and override what they need."""

    name = ""
    params: tuple[Param, ...] = ()
    # Request-level stages (background removal, the output format, access) set fields but do no
    # pixel work of their own in the stage loop.
    pixels = True
    # True: when active, the stage needs the image's own pixels (no reduced-scale JPEG decode),
    # e.g. a crop window in source pixels.
    full_decode = False
    # True: the stage's output size depends on the pixels (trim), so it runs before the output
    # budget is checked, on the decoded image; such stages come first in the order.
    before_budget = False

    @property
    def fields(self) -> dict[str, Any]:
        """Field name → default, in declaration order (the first Param naming a field sets it).
        A new dict each time (callers may change it); worked out once per stage."""
        return dict(self._fields)

    @cached_property
    def _fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for param in self.params:
            out.setdefault(param.field, param.default)
        return out

    @cached_property
    def keyed_fields(self) -> tuple[str, ...]:
        unkeyed = {p.field for p in self.params if not p.keyed}
        return tuple(f for f in self.fields if f not in unkeyed)

    def parse(self, values: dict[str, str], parsed: dict[str, Any]) -> dict[str, Any]:
        """Field values from the query's `values` (names already de-aliased, last one wins);
        `parsed` holds the fields of the stages before this one. An absent or unreadable value
        is left out, so the field keeps its default."""
        out = {}
        for param in self.params:
            if param.parse is not None and param.name in values:
                value = param.parse(values[param.name])
                if value is not None:
                    out[param.field] = value
        return out

    def active(self, p: RenderParams) -> bool:
        """Whether the stage changes anything for these parameters."""
        keyed = self.keyed_fields
        return any(getattr(p, f) != d for f, d in self._fields.items() if f in keyed)

    def effective(self, p: RenderParams, fmt: str) -> dict[str, Any]:
        """The stage's keyed fields as they act: values that cannot change the output reset to
        their defaults, so two URLs that draw the same image share one stored render."""
        fields = self._fields
        if not self.active(p):
            return {f: fields[f] for f in self.keyed_fields}
        return {f: getattr(p, f) for f in self.keyed_fields}

    # The canonical form of a rendering query, for stages whose value names an image that may be a
    # rendering URL (mark, blend, mask): rendering/params.py sets it, since it parses with every stage.
    query_canonical = None

    def image_ref_canonical(self, ref: str) -> str:
        """An image a parameter names, in one spelling: a URL as it is; a path on the source as it
        is fetched, with a query, a rendering of it whose parameters (in any order) are part of
        what the composite means."""
        if "://" in ref:
            return ref
        path, _, query = ref.lstrip("/").partition("?")
        nested = self.query_canonical(query) if query else ""
        return f"{path}?{nested}" if nested else path

    def size(self, size: Box, p: RenderParams, context: StageContext) -> Box:
        """The size `apply` gives an image of `size`, without any pixels."""
        return size

    def apply(self, image: Image.Image, p: RenderParams, context: StageContext) -> Image.Image:
        return image
