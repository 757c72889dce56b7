"""One gate for every way a render enters: the same checks, in the same order, for each door.

Work reaches the render pipeline by several doors: a rendering request (`/render/…` or a source
host), a `mark` that is itself a rendering URL (at any depth), the management API's pre-warm,
remove.bg's API on an account's uploads, and the playground on an image dropped on it. Each door
describes what it knows in an `Entry` and calls `render_gate`, which runs, in this order:

1. source kind — the source exists, and is of a kind this door may reach (an account's uploads
   only through remove.bg's API and the playground; everything else never through them);
2. signature — an anonymous door (a request, a mark) carries a valid `s` where the source
   requires signatures, unless the text it arrived in was itself signed with that source's
   token (a mark on the same source inside a signed URL); an authenticated door (an API key)
   must belong to the source's account instead;
3. `expires`;
4. entitlement — background removal enabled for the source, when asked for;
5. rate — the account's rate for the door, counted once the entry is known to be valid;

and, for a rendering URL, each nested `mark` that is a rendering URL passes the same gate as an
entry of its own (door MARK), so a mark cannot reach what its URL could not. The sixth check,
the budget of the output, needs the decoded image's size: `rendering.services._serve` checks it
for every render, whichever door it came through, before any work on pixels.
"""

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from accounts.limits import render_admit
from core.errors import BadRequestError, NotFoundError
from cutouts.services import BgRemoveNotEnabledError
from rendering.marks import MAX_DEPTH as MAX_MARK_DEPTH
from rendering.marks import MarkError, MarkLoopError, MarkRef, MarkTooDeepError, mark_ref
from rendering.operations.mask import STAGE as mask_stage
from rendering.params import RenderParams, params_parse
from rendering.signing import expires_check, signature_check
from sources.models import Source
from sources.origins import path_clean
from sources.selectors import source_bg_remove_enabled, source_get


class SourceNotFoundError(NotFoundError):
    code = "source_not_found"
    default_message = "No such source."


class PlaygroundImagesError(BadRequestError):
    code = "playground_images"
    default_message = ("An uploaded image in the playground takes no mark, blend or mask: those name other "
                       "images by URL; try them on a source's image.")


class Door(enum.Enum):
    REQUEST = "request"  # A rendering URL, anonymous: signed where its source requires it.
    MARK = "mark"  # A `mark` that is a rendering URL, inside another entry.
    PREWARM = "prewarm"  # The management API, authenticated by one of the account's keys.
    REMOVEBG = "removebg"  # remove.bg's API on the account's uploads, authenticated by a key.
    # The playground page (playground/) on an account's uploads (an image dropped on it),
    # authenticated by its signed-in session (an API key's account, or an account manager's).
    PLAYGROUND = "playground"


# The doors that authenticate an account themselves (an API key) instead of a URL signature.
_AUTHENTICATED = (Door.PREWARM, Door.REMOVEBG, Door.PLAYGROUND)
# The doors that reach an account's uploads, and nothing else.
_UPLOADS = (Door.REMOVEBG, Door.PLAYGROUND)


@dataclass(frozen=True)
class Entry:
    """What a door knows about the work it lets in."""

    door: Door
    source: Source | None  # None: no such source (answered like one of another account).
    path: str = ""  # As received, before cleaning.
    raw_query: str = ""  # As received: its order and `s` are what a signature covers.
    # The path in the spellings it may have been signed in (a callable: only a source that
    # requires signatures needs them worked out).
    signed_paths: Callable[[], Sequence[str]] = tuple
    account: object = None  # The authenticated doors' account.
    # The source whose verified signature covers this entry's text (a mark inside a signed URL).
    covered_by: int | None = None
    # For the authenticated doors, which have no query of their own to say it.
    bg_remove: bool = False
    # The door's rate, counted at step 5; by default the account's rendering request rate. A mark's
    # door counts nothing itself: the outermost entry counts it.
    admit: Callable = None
    chain: tuple = ()  # (source id, path) of the renders this one is a mark of, outermost first.


@dataclass(frozen=True)
class MarkPass:
    """A `mark` that passed: what it names, and for a rendering URL its own pass."""

    ref: MarkRef
    render: "Pass | None" = None
    expires: int | None = None  # A file's own `expires`, when its query names one.


@dataclass(frozen=True)
class Pass:
    """An entry that passed every check: the source, the clean path, its parameters and its mark."""

    source: Source
    path: str
    params: RenderParams
    signed: bool = False  # Verified by (or covered by) this source's signature.
    mark: MarkPass | None = None
    blend: MarkPass | None = None  # An image as the blend (a colour needs no pass).
    mask: MarkPass | None = None  # An image as the mask (a shape needs no pass).

    @property
    def nested(self) -> tuple[tuple[str, MarkPass], ...]:
        """The images this entry draws on it, by the parameter that names them."""
        images = (("mark", self.mark), ("blend", self.blend), ("mask", self.mask))
        return tuple((name, image) for name, image in images if image)

    @property
    def expires(self) -> int | None:
        """The earliest `expires` of this entry and its nested images: a response made of them
        may not be served after it."""
        inner = [image.render.expires if image.render is not None else image.expires for _, image in self.nested]
        times = [t for t in (self.params.expires, *inner) if t is not None]
        return min(times) if times else None

    @property
    def admits(self) -> int:
        """How many entries the gate counted for this one against the account's rate (itself and
        each nested rendering URL): a repeat of the same request counts the same."""
        return 1 + sum(image.render.admits for _, image in self.nested if image.render is not None)


def render_gate(entry: Entry) -> Pass:
    """Every check of the module docstring, in its order; raises the first that fails."""
    source, door = entry.source, entry.door
    # 1. Source kind. The same answer for no source, another account's, and a kind this door may
    # not reach: nobody can probe for them.
    if source is None or (source.kind == Source.Kind.UPLOADS) != (door in _UPLOADS):
        raise SourceNotFoundError()
    # 2. Signature, or the key's account.
    if door in _AUTHENTICATED:
        if entry.account is None or source.account_id != entry.account.pk:
            raise SourceNotFoundError()
        signed = False
    elif source.require_signature and entry.covered_by != source.id:
        signature_check(tokens=source.secure_tokens, paths=list(entry.signed_paths()), raw_query=entry.raw_query)
        signed = True
    else:
        signed = source.require_signature
    params = params_parse(entry.raw_query)
    # The uploads doors name their images themselves (by their content, after the body is read;
    # the playground checks a name given back to it against that form before the gate).
    path = entry.path if door in _UPLOADS else path_clean(entry.path)
    if door is Door.PLAYGROUND and (params.mark or isinstance(params.blend, str) and params.blend
                                       or mask_stage.image(params)):
        # Its entries are not URLs another image could be nested in: refused, not dropped.
        raise PlaygroundImagesError()
    # 3. expires.
    expires_check(params.expires)
    # 4. Entitlement.
    if (params.bg_remove or entry.bg_remove) and not source_bg_remove_enabled(source=source):
        if source.kind == Source.Kind.UPLOADS:  # The account's own source: the account's switch.
            raise BgRemoveNotEnabledError("Background removal is not enabled for this account; ask your account "
                                          "manager to enable it.")
        raise BgRemoveNotEnabledError()
    # The nested marks are checked through to the last (steps 1–4 of each), before this entry
    # counts against the rate: a refused one uses none of it.
    chain = (*entry.chain, (source.id, path))
    nested = door not in _AUTHENTICATED
    mark = _mark_pass(source, signed, params.mark, chain) if params.mark and nested else None
    # An image as the blend passes the same gate as a mark (a colour is only a value).
    blend_image = params.blend if isinstance(params.blend, str) else ""
    blend = _mark_pass(source, signed, blend_image, chain, name="blend") if blend_image and nested else None
    mask_image = mask_stage.image(params)
    mask = _mark_pass(source, signed, mask_image, chain, name="mask") if mask_image and nested else None
    gate = Pass(source=source, path=path, params=params, signed=signed, mark=mark, blend=blend, mask=mask)
    # 5. Rate, once the whole entry is known to be valid. A nested mark is counted here, by the
    # outermost entry (its own door admits nothing): each rendering URL in the chain counts once,
    # against the same account.
    if door is not Door.MARK:
        (entry.admit or render_admit)(account=source.account)
        for _ in range(gate.admits - 1):
            render_admit(account=source.account)
    return gate


def _mark_pass(source: Source, signed: bool, value: str, chain: tuple, name: str = "mark") -> MarkPass:
    """The `mark` (or image `blend`, `name`) of a render of `chain[-1]`, through the gate when it is
    a rendering URL: 400 for a bad, looping or too deep one or one naming a source the account does
    not have, and whatever its own entry answers (403 for a missing signature or entitlement, 404
    when expired)."""
    ref = mark_ref(value, name)
    if ref.kind != "render":
        # A file of the same source: covered by the base's own checks, but not past its own
        # `expires` when it names one.
        expires = params_parse(ref.query).expires if ref.query else None
        expires_check(expires)
        return MarkPass(ref=ref, expires=expires)
    if len(chain) > MAX_MARK_DEPTH:
        raise MarkTooDeepError()
    same = not ref.source_slug or ref.source_slug == source.slug
    mark_source = source if same else source_get(slug=ref.source_slug)
    if (mark_source is None or mark_source.account_id != source.account_id
            or mark_source.kind == Source.Kind.UPLOADS):
        # The same answer whether the source exists or not: no probing of other accounts.
        raise MarkError(f"A {name}'s rendering URL must name a source of the same account.")
    if (mark_source.id, ref.path) in chain:
        raise MarkLoopError()
    entry = Entry(door=Door.MARK, source=mark_source, path=ref.path, raw_query=ref.query,
                  signed_paths=lambda: ref.signed_paths(mark_source.slug),
                  # Text signed with the base's token vouches for a mark on the same source only.
                  covered_by=source.id if signed and same else None, chain=chain)
    render = render_gate(entry)
    if render.params.palette or render.params.fm == "json":
        raise MarkError(f"A {name}'s rendering URL must answer an image, not a palette (palette=…) or metadata "
                        "(fm=json).")
    return MarkPass(ref=ref, render=render)
