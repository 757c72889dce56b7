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
