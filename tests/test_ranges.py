"""Value ranges, declared once and used alike for Python values and command-line text."""

import math

import pytest

from sgdlab.errors import ConfigError
from sgdlab.ranges import NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_NUMBER, check_choice


@pytest.mark.parametrize("value_range, inside, outside", [
    (POSITIVE_INT, [1, 7, 10**12], [0, -1, 2.5, True, "3", None]),
    (NON_NEGATIVE_INT, [0, 1, 2**40], [-1, 0.0, False, "0"]),
    (POSITIVE_NUMBER, [1e-300, 0.1, 3, 1e300], [0, 0.0, -0.1, math.nan, math.inf, True, "0.1"]),
])
def test_values_in_and_out_of_range(value_range, inside, outside):
    for value in inside:
        assert value_range.check("setting", value) == value
    for value in outside:
        with pytest.raises(ConfigError, match=f"setting must be {value_range.description}, got {value!r}"):
            value_range.check("setting", value)


@pytest.mark.parametrize("value_range, text, value", [
    (POSITIVE_INT, "12", 12), (NON_NEGATIVE_INT, "0", 0), (POSITIVE_NUMBER, "1e-3", 1e-3), (POSITIVE_NUMBER, "2", 2.0),
])
def test_text_is_parsed_to_the_ranges_kind(value_range, text, value):
    parsed = value_range.parse(text)
    assert parsed == value and type(parsed) is value_range.kind


@pytest.mark.parametrize("value_range, text", [
    (POSITIVE_INT, "0"), (POSITIVE_INT, "1.5"), (POSITIVE_INT, "x"), (NON_NEGATIVE_INT, "-1"),
    (POSITIVE_NUMBER, "0"), (POSITIVE_NUMBER, "nan"), (POSITIVE_NUMBER, "-inf"), (POSITIVE_NUMBER, ""),
])
def test_text_out_of_range_names_the_range(value_range, text):
    with pytest.raises(ValueError, match=f"must be {value_range.description}, got {text!r}"):
        value_range.parse(text)


def test_choices():
    assert check_choice("sampling", "epoch", ("random", "epoch")) == "epoch"
    with pytest.raises(ConfigError, match="sampling must be one of random, epoch, got 'shuffle'"):
        check_choice("sampling", "shuffle", ("random", "epoch"))
