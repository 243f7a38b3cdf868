"""The depth-range grammar: every accepted form and every bad one."""

import pytest

from gdepth.depth import DepthError, parse_depths


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("2..64", [2, 4, 8, 16, 32, 64]),
        ("1..8", [1, 2, 4, 8]),
        ("4..4", [4]),
        ("2..32:x4", [2, 8, 32]),
        ("2..12:+2", [2, 4, 6, 8, 10, 12]),
        ("3..9:+3", [3, 6, 9]),
        ("2,4,8", [2, 4, 8]),
        ("16", [16]),
        (" 2, 3 ", [2, 3]),
    ],
)
def test_accepted_forms(spec, expected):
    assert parse_depths(spec) == expected


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("64..2", "downwards"),
        ("0", ">= 1"),
        ("0..8", ">= 1"),
        ("2,0,4", ">= 1"),
        ("a..b", "not a depth"),
        ("3..64", "not 3 times a power of 2"),
        ("2..12:+4", "not 2 plus a multiple of 4"),
        ("2..8:x1", "factor must be >= 2"),
        ("2..8:+0", "step must be >= 1"),
        ("2,2", "twice"),
        ("-2", "not a depth"),
        ("2.5", "not a depth"),
        ("", "not a depth"),
    ],
)
def test_rejected_forms_name_the_value_and_the_valid_forms(spec, reason):
    with pytest.raises(DepthError) as info:
        parse_depths(spec)
    message = str(info.value)
    assert reason in message
    assert f"'{spec.strip()}'" in message
    assert "2..64 (doubling)" in message and "2,4,8 (list)" in message
    assert "\n" not in message
