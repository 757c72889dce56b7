import pytest

from rendering.params import ParamError, params_parse, query_pairs


@pytest.mark.parametrize(
    "query, expected",
    [
        ("bg-remove=true", True),
        ("bg-remove=1", True),
        ("background-remove=true", True),
        ("bg-remove=false", False),
        ("bg-remove=maybe", False),
        ("", False),
        ("bg-remove=false&bg-remove=true", True),
    ],
)
def test_bg_remove(query, expected):
    assert params_parse(query).bg_remove is expected


def test_auto_combines_by_repetition_and_by_encoded_commas():
    assert params_parse("auto=format&auto=compress").auto == {"format", "compress"}
    assert params_parse("auto=format%2Ccompress").auto == {"format", "compress"}
    assert params_parse("auto=format%2Ccompress").auto_format


@pytest.mark.parametrize("value, expected", [("jpg", "jpg"), ("JPEG", "jpg"), ("webp", "webp"), ("tiff", ""), ("", "")])
def test_fm_unknown_is_ignored(value, expected):
    assert params_parse(f"fm={value}").fm == expected


@pytest.mark.parametrize("value, expected", [("80", 80), ("150", 100), ("-3", 0), ("abc", None), ("79.6", 80)])
def test_q_clamped_or_ignored(value, expected):
    assert params_parse(f"q={value}").q == expected


def test_base64_variant_decodes_and_rejects_bad_input():
    assert query_pairs("fm64=d2VicA") == [("fm", "webp")]
    with pytest.raises(ParamError) as err:
        query_pairs("fm64=d2Vic+A=")
    assert err.value.status_code == 400


def test_same_meaning_same_canonical_form():
    a = params_parse("bg-remove=true&fm=png&ixlib=python-4.0.0")
    b = params_parse("fm=png&background-remove=1")
    assert a.canonical() == b.canonical()
    assert a.canonical() != params_parse("bg-remove=true&fm=webp").canonical()


# --- trim and pad -------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, field, expected", [
    ("trim=alpha", "trim", "alpha"),
    ("trim=COLOR", "trim", "color"),
    ("trim=colorunlessalpha", "trim", "colorunlessalpha"),
    ("trim=bogus", "trim", ""),  # Unknown: ignored, no trim.
    ("trim-alpha=128", "trim_alpha", 128),
    ("trim-alpha=300", "trim_alpha", 255),  # Clamped to 0–255.
    ("trim-alpha=-4", "trim_alpha", 0),
    ("trim-alpha=x", "trim_alpha", 0),
    ("trim-color=fff", "trim_color", (255, 255, 255, 255)),
    ("trimcolor=80ff0000", "trim_color", (255, 0, 0, 128)),  # imgix's alias; alpha first.
    ("trim-color=nope", "trim_color", None),  # Not a colour: the top-left pixel's, the default.
    ("trim-tol=12.5", "trim_tol", 12.5),
    ("trimtol=-1", "trim_tol", 0.0),
    ("trim-tol=999", "trim_tol", 255.0),
    ("trim-tol=NaN", "trim_tol", 0.0),
    ("trim-md=4&trimsd=2", "trim_md", 4.0),
    ("trimsd=2", "trim_sd", 2.0),
    ("trim-sd=abc", "trim_sd", 10.0),
    ("trim-pad=12", "trim_pad", 12),
    ("trimpad=-20", "trim_pad", -20),
    ("trim-pad=99999", "trim_pad", 8192),
    ("pad=40", "pad", (40, 40, 40, 40)),
    ("pad=40&pad-left=0&pad-bottom=7", "pad", (0, 40, 40, 7)),  # left, top, right, bottom.
    ("pad-top=5", "pad", (0, 5, 0, 0)),
    ("pad=-3", "pad", (0, 0, 0, 0)),  # Clamped to 0.
    ("pad=99999", "pad", (8192, 8192, 8192, 8192)),
    ("pad=abc&pad-right=x", "pad", (0, 0, 0, 0)),  # Ignored.
    ("pad=10&pad-right=x", "pad", (10, 10, 10, 10)),  # A bad side falls back to pad.
])
def test_trim_and_pad_values_parsed_clamped_or_ignored(query, field, expected):
    assert getattr(params_parse(query), field) == expected


def test_trim_and_pad_are_operations():
    assert not params_parse("trim-tol=5&pad=0").has_operations
    assert params_parse("trim=alpha").has_operations and params_parse("pad-left=1").has_operations


def test_trim_values_key_the_render_only_where_they_apply():
    def same(a, b):
        return params_parse(a).canonical() == params_parse(b).canonical()

    assert same("trim-alpha=9&trim-tol=4&trim-pad=3&trim-md=1", "")  # No trim: nothing of it applies.
    assert same("trim=alpha&trim-tol=4&trim-color=red&trim-md=2", "trim=alpha")
    assert not same("trim=alpha&trim-alpha=9", "trim=alpha")
    assert same("trim=color&trim-alpha=9&trim-sd=3", "trim=color")
    assert not same("trim=color&trim-tol=4", "trim=color")
    assert same("trim=color&trim-tol=4", "trimtol=4.0&trim=color")
    assert same("trim=color&trim-color=white", "trim=color&trim-color=fff")
    assert not same("trim=color&trim-color=fff", "trim=color")  # None is the top-left pixel's.
    assert same("trim=auto&trim-tol=4&trim-alpha=3", "trim=auto")
    assert not same("trim=auto&trim-md=4", "trim=auto")
    assert same("trim=auto&trim-md=11&trim-sd=10", "trim=auto")  # Defaults spelled out.
    assert not same("trim=colorunlessalpha&trim-tol=4", "trim=colorunlessalpha")
    assert not same("trim=colorunlessalpha&trim-alpha=4", "trim=colorunlessalpha")
    assert not same("trim=alpha&trim-pad=2", "trim=alpha")
    assert not same("trim=alpha", "trim=color")


def test_pad_keys_the_render_and_json_ignores_it():
    def key(query, fmt=None):
        return params_parse(query).canonical(fmt)

    assert key("pad=10") == key("pad-left=10&pad-top=10&pad-right=10&pad-bottom=10")
    assert key("pad=10") != key("pad=10&pad-left=0") != key("")
    assert key("pad=0") == key("")
    assert key("pad=10&trim=alpha&fm=json") == key("fm=json")
