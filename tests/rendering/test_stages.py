"""rendering/stages.py: the list of stages is the one place parameters, fields and order come from."""

import dataclasses

import pytest

from rendering.operations.bg import STAGE as BG
from rendering.operations.trim import STAGE as TRIM
from rendering.params import RenderParams, params_parse
from rendering.stage import Param, Stage
from rendering.stages import FIELDS, KEYED_FIELDS, PIXEL_STAGES, STAGES, _check, stages_decode_size


class _Blur(Stage):
    name = "blur-again"
    params = (Param("blur", lambda v: v),)


class _Bg(Stage):
    name = "bg-again"
    params = (Param("background", lambda v: v, field="bg"),)


def test_a_parameter_or_field_read_by_two_stages_is_refused_at_import():
    with pytest.raises(ValueError, match="'blur' is read by both"):
        _check((*STAGES, _Blur()))
    with pytest.raises(ValueError, match="Field 'bg' belongs to both"):
        _check((BG, _Bg()))


def test_a_stage_sized_by_its_pixels_must_come_first():
    with pytest.raises(ValueError, match="before the budget"):
        _check((BG, TRIM))


def test_render_params_has_exactly_the_stages_fields():
    assert [f.name for f in dataclasses.fields(RenderParams)] == list(FIELDS)
    assert set(KEYED_FIELDS) <= set(FIELDS)
    assert RenderParams() == params_parse("")


def test_the_cache_key_holds_only_what_differs_from_the_defaults():
    """A URL without any parameter of a new stage keeps its key when that stage is added."""
    canonical = params_parse("w=100&blur=20").canonical("webp")
    assert "blur=20" in canonical and "sepia" not in canonical and "txt" not in canonical
    assert params_parse("w=100").canonical("webp") == "fmt='webp'&q=75&w=Dim(value=100, ratio=False)"


def test_anything_to_do_and_the_decode_size_come_from_the_stages():
    assert not params_parse("fm=webp&q=50").has_operations
    assert all(stage.active(params_parse("")) is False for stage in PIXEL_STAGES)
    assert params_parse("sepia=50").has_operations and params_parse("rot=10").has_operations
    # A JPEG may decode at a reduced scale for a plain resize, not when a stage needs the source's
    # own pixels (a window of them, their orientation).
    assert stages_decode_size(params_parse("w=100")) == (100, 1)
    assert stages_decode_size(params_parse("w=100&rect=0,0,50,50")) is None
    assert stages_decode_size(params_parse("w=100&flip=h")) is None
    assert stages_decode_size(params_parse("w=100&sepia=20")) == (100, 1)
