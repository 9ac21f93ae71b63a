"""Owner input -> RedactionSpec: strict, every bad input refused with a message naming it."""

from __future__ import annotations

import json

import pytest

from doorbell.errors import RedactionError
from doorbell.redact.parse import MAX_SHAPES, parse_box, spec_from_cli, spec_from_form


def test_form_with_drawn_shapes_typed_box_and_method() -> None:
    spec = spec_from_form(
        {
            "regions": json.dumps([[[0.1, 0.1], [0.4, 0.1], [0.25, 0.5]]]),
            "keep": json.dumps([[[0, 0], [1, 0], [1, 0.8], [0, 0.8]]]),
            "box_x0": "0.5",
            "box_y0": "0.5",
            "box_x1": "0.9",
            "box_y1": "0.75",
            "box_kind": "redact",
            "redact_method": "fill",
            "redact_faces": "on",
        }
    )
    assert spec.method == "fill" and spec.faces
    assert len(spec.regions) == 2 and len(spec.keep) == 1
    assert spec.regions[1] == ((0.5, 0.5), (0.9, 0.5), (0.9, 0.75), (0.5, 0.75))


def test_empty_form_is_an_empty_spec() -> None:
    spec = spec_from_form({"regions": "", "keep": "", "box_x0": ""})
    assert spec.is_empty and spec.method == "pixelate"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"regions": "[[[0.1, 0.1], [0.5, 0.1]]]"}, "regions shape 1: want a list of 3"),
        ({"regions": "[[[0.1, 0.1], [0.5, 0.1], [1.5, 0.5]]]"}, "outside 0..1"),
        ({"regions": "[[[0.1, 0.1], [0.5, 0.1], [NaN, 0.5]]]"}, "outside 0..1"),
        ({"regions": '[[[0.1, 0.1], [0.5, 0.1], ["x", 0.5]]]'}, "not a number"),
        ({"regions": "[[[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]]"}, "has no area"),
        ({"regions": "{not json"}, "regions: not valid JSON"),
        ({"regions": '{"a": 1}'}, "want a list of polygons"),
        ({"keep": "[" + ",".join(["[[0,0],[1,0],[1,1]]"] * (MAX_SHAPES + 1)) + "]"}, "at most"),
        ({"regions": "[" + " " * 9000 + "]"}, "too long"),
        ({"regions": "[" * 5000}, "too many shapes or corners"),  # no RecursionError
        ({"regions": "[[[" + "9" * 5000 + ",0],[0,0],[1,1]]]"}, "not valid JSON"),
        ({"box_x0": "0.1", "box_y0": "0.1", "box_x1": "0.5"}, "all four"),
        (
            {"box_x0": "0.5", "box_y0": "0.1", "box_x1": "0.2", "box_y1": "0.3"},
            "left must be < right",
        ),
        ({"box_x0": "0.1", "box_y0": "0.1", "box_x1": "0.5", "box_y1": "2"}, "outside 0..1"),
        (
            {"box_x0": "0.1", "box_y0": "0.1", "box_x1": "0.5", "box_y1": "0.5", "box_kind": "x"},
            "box_kind",
        ),
        ({"redact_method": "gaussian"}, "redact_method"),
    ],
)
def test_bad_form_input_is_refused_with_a_clear_message(form: dict, message: str) -> None:
    with pytest.raises(RedactionError, match=message):
        spec_from_form(form)


def test_cli_boxes() -> None:
    spec = spec_from_cli(
        faces=False,
        regions=["0.1,0.2,0.3,0.4", "0,0,1,0.1"],
        keep=["0.2, 0.2, 0.8, 0.9"],
        method="fill",
    )
    assert len(spec.regions) == 2 and len(spec.keep) == 1 and not spec.faces
    for bad in ("0.1,0.2,0.3", "a,b,c,d", "0.3,0.2,0.1,0.4", "0,0,1,1.5", "inf,0,1,1"):
        with pytest.raises(RedactionError, match="--redact-region"):
            spec_from_cli(faces=False, regions=[bad], keep=[], method=None)
    assert parse_box("0,0,1,1") == ((0, 0), (1, 0), (1, 1), (0, 1))
