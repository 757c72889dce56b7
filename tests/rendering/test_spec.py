"""imgix's published spec (rendering/imgix/parameters.json, npm imgix-url-params) against the
stages: every parameter is served by a stage or refused, every alias of a served parameter is
read, and every served parameter is read and keys the render cache (a parameter that changed
nothing and shared `?`'s key would be one silently ignored)."""

import pytest

from rendering.operations.unsupported import IMGIX_SPEC, VALUES, UnsupportedParameterError
from rendering.params import params_parse
from rendering.stages import ALIASES, FIELDS, PARAMETERS, STAGES
from rendering.stages import unsupported as unsupported_module

SERVED = sorted(name for name in IMGIX_SPEC["parameters"] if name in PARAMETERS)
REFUSED = sorted(name for name in IMGIX_SPEC["parameters"] if name not in PARAMETERS)
UNKEYED = {param.name for stage in STAGES for param in stage.params if not param.keyed}
# auto=format keys the cache through the format it negotiates (canonical's fmt), from Accept.
NEGOTIATED = {"auto"}
OUR_FIELDS = {param.name: param.field for stage in STAGES for param in stage.params}
# A box to work in: without w/h, fit, crop and their kin have nothing to act on.
BASE = "w=300&h=200"
# What the spec leaves out of `depends`, or where our default differs from it: a parameter of the
# family acts only with the family's switch.
BASES = {"ar": "w=300"}  # ar sets the missing side; with both w and h it has nothing to set.
# The longest start that matches a name wins.
EXTRA_DEPENDS = {
    "bg-remove-": "bg-remove=true", "mark-": "mark=mark.png", "fill": "fit=fill",
    "fill-gradient-": "fit=fill&fill=gradient",
    "fill-gradient-radial": "fit=fill&fill=gradient&fill-gradient-type=radial",
    "border-stroke-color": "border-stroke-size=4", "border-stroke-size": "border-stroke-color=ff0000",
    "rot-type": "rot=30", "txt-lead": "txt=a%0Ab",  # Leading is the space between two lines.
    "blend-": "blend=ff0000&blend-w=10",  # A region of the image: the rest places it.
    "blend-color": "blend-w=10",  # The colour on its own.
    "blend-fit": "blend=x.png&blend-w=10&blend-h=20",  # An image fitted into a box of another shape.
    "blend-crop": "blend=x.png&blend-size=inherit", "blend-size": "blend=x.png",
}
# Values that draw what the default draws (fill=solid is what no fill draws).
SAME_AS_DEFAULT = {"fill": {"solid"}, "blend-align": {"top", "left"}}
# Served at their default only: every other value the spec lists is refused.
ONLY_THE_DEFAULT = {"bg-remove-fg-type"}


def _sample(name: str, spec: dict) -> str:
    """A valid value of `name` away from its default, from the spec's own description of it."""
    expects = spec.get("expects") or [{"type": "string"}]
    first = expects[0]
    kind = first.get("type")
    # Our default where we serve it (bg-remove-fallback: a 202 by default, docs/rendering.md).
    default = FIELDS[OUR_FIELDS[name]] if name in OUR_FIELDS else spec.get("default", first.get("default"))
    values = [v for v in first.get("possible_values", ())
              if v not in VALUES.get(name, {}) and v not in SAME_AS_DEFAULT.get(name, ())]
    if name == "rect":
        return "10,20,100,50"
    if kind == "list" and "length" in first:
        # A fixed list: one sample per element, from the element's first type.
        return ",".join(_element(first[str(i)][0], i) for i in range(first["length"]))
    if values:
        return next((v for v in values if str(v) != str(default)), values[0])
    if kind in ("integer", "number"):
        bounds = first.get("strict_range") or first.get("suggested_range") or {}
        low, high = bounds.get("min", 0), bounds.get("max")
        value = low + (max(1, (high - low) // 3) if high is not None else 7)
        return str(value if value != default else value + 1)
    return {
        "unit_scalar": "0.37", "boolean": "false" if default in (True, "true") else "true",
        "hex_color": "ff0000", "color_keyword": "red", "ratio": "16:9", "timestamp": "2000000000",
        "url": "mark.png", "path": "mark.png", "font": "serif", "list": "a", "interval": "1,2",
    }.get(kind, "hello")


def _element(spec: dict, index: int) -> str:
    kind = spec.get("type")
    if kind == "hex_color":
        return ("ff0000", "0000ff", "00ff00", "ffff00")[index % 4]
    if kind in ("integer", "number"):
        bounds = spec.get("strict_range") or spec.get("suggested_range") or {}
        low, high = bounds.get("min", 0), bounds.get("max")
        return str(low + (max(1, (high - low) // 3) if high is not None else 7) + index)
    return {"unit_scalar": "0.3", "color_keyword": "red"}.get(kind, "a")


def _depends(spec: dict) -> str:
    """The parameters the spec says this one acts with; alternatives of one name (fm=avif, fm=jpg):
    the first."""
    chosen = {}
    for dependency in spec.get("depends") or ():
        name, _, value = dependency.partition("=")
        name = IMGIX_SPEC["aliases"].get(name, name)
        if name not in chosen:
            chosen[name] = value or _sample(name, IMGIX_SPEC["parameters"][name])
    return "&".join(f"{k}={v}" for k, v in chosen.items())


def _base(name: str, spec: dict) -> str:
    starts = sorted((start for start in EXTRA_DEPENDS if name.startswith(start)), key=len, reverse=True)
    extra = EXTRA_DEPENDS[starts[0]] if starts and name != EXTRA_DEPENDS[starts[0]].split("=")[0] else ""
    return "&".join(part for part in (BASES.get(name, BASE), _depends(spec), extra) if part)


def test_every_parameter_of_the_spec_is_served_or_refused():
    refused = unsupported_module.STAGE.refused
    assert IMGIX_SPEC["version"] == "11.36.0"
    for name in IMGIX_SPEC["parameters"]:
        assert (name in PARAMETERS) != (name in refused), name


@pytest.mark.parametrize("name", SERVED)
def test_every_alias_of_a_served_parameter_is_read_as_it(name):
    spec = IMGIX_SPEC["parameters"][name]
    aliases = set(spec.get("aliases", ())) | {a for a, n in IMGIX_SPEC["aliases"].items() if n == name}
    for alias in aliases - {name}:
        assert ALIASES.get(alias) == name, alias


@pytest.mark.parametrize("name", SERVED)
def test_every_served_parameter_is_read_and_keys_the_cache(name):
    spec = IMGIX_SPEC["parameters"][name]
    base = _base(name, spec)
    if name in ONLY_THE_DEFAULT:
        others = [v for v in spec["expects"][0]["possible_values"] if v != spec.get("default")]
        for value in others:
            with pytest.raises(UnsupportedParameterError, match=f"{name}={value}"):
                params_parse(f"{base}&{name}={value}")
        assert others
        return
    value = _sample(name, spec)
    with_it = params_parse(f"{base}&{name}={value}")
    try:
        without = params_parse(base)
    except UnsupportedParameterError:
        # A fallback: what it depends on is refused without it, and served with it, said.
        assert with_it.fallbacks, f"{name}={value} was not read"
        return
    assert with_it != without, f"{name}={value} was not read"
    if name not in UNKEYED | NEGOTIATED:
        assert with_it.canonical() != without.canonical(), f"{name}={value} does not key the cache"


@pytest.mark.parametrize("name", REFUSED)
def test_every_refused_parameter_is_a_400_naming_it(name):
    spec = IMGIX_SPEC["parameters"][name]
    with pytest.raises(UnsupportedParameterError) as refused:
        params_parse(f"{BASE}&{name}={_sample(name, spec)}")
    assert name in str(refused.value)
    assert refused.value.status_code == 400


def test_refused_aliases_are_refused_too():
    with pytest.raises(UnsupportedParameterError, match=r"license-plate-blur \(lp-blur\)"):
        params_parse("license-plate-blur=true")


def test_a_name_that_is_not_imgix_is_ignored_as_imgix_does():
    assert params_parse("w=100&ixlib=python-4.0&v=2") == params_parse("w=100")


@pytest.mark.parametrize("query, note", [
    ("bg-replace=a%20beach&bg-replace-fallback=true", "bg-replace needs a generative model"),
    ("upscale=true&upscale-fallback=1", "upscale needs a generative model"),
    ("w=100&h=100&fit=fill&fill=gen&fill-gen-fallback=true", "fill=gen needs a generative model"),
])
def test_a_fallback_the_url_asks_for_is_served_and_said(query, note):
    assert any(note in n for n in params_parse(query).fallbacks)


@pytest.mark.parametrize("query", ["bg-replace=a%20beach", "bg-replace=a%20beach&bg-replace-fallback=false",
                                   "fm=jp2", "w=100&h=100&fit=fill&fill=gen", "auto=format,true",
                                   "video-codec=h264", "lp-blur=true"])
def test_without_its_fallback_an_operation_we_cannot_run_is_refused(query):
    with pytest.raises(UnsupportedParameterError):
        params_parse(query)


def test_the_refusal_and_the_fallback_over_http(client, source):
    refused = client.get(f"/render/{source.slug}/astronaut.jpg?w=50&bg-replace=sky")
    assert refused.status_code == 400
    assert "bg-replace" in refused.json()["error"]["message"] and "bg-replace-fallback=true" in (
        refused.json()["error"]["message"])
    served = client.get(f"/render/{source.slug}/astronaut.jpg?w=50&bg-replace=sky&bg-replace-fallback=true")
    plain = client.get(f"/render/{source.slug}/astronaut.jpg?w=50")
    assert served.status_code == 200 and served.getvalue() == plain.getvalue()
    assert "bg-replace needs a generative model" in served["X-Render-Fallback"]
    assert "X-Render-Fallback" not in plain


def test_the_table_in_the_docs_is_the_generated_one():
    from rendering.params_table import DOC, params_table_in_doc

    text = DOC.read_text()
    assert params_table_in_doc(text) == text, "run `python manage.py imgix_params_table --write`"
