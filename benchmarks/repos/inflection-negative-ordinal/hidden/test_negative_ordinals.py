"""Negative numbers take the suffix of their absolute value (FAIL_TO_PASS)."""

import inflection
import pytest


def test_ordinal_of_negative_numbers():
    assert [inflection.ordinal(n) for n in (-1, -2, -3, -4)] == ["st", "nd", "rd", "th"]


def test_ordinal_of_negative_teens_and_hundreds():
    cases = {-11: "th", -12: "th", -13: "th", -21: "st", -101: "st", -112: "th", -1003: "rd"}
    assert {n: inflection.ordinal(n) for n in cases} == cases


@pytest.mark.parametrize(
    ("number", "expected"), [(-1, "-1st"), (-22, "-22nd"), (-1021, "-1021st"), ("-3", "-3rd")]
)
def test_ordinalize_negative_numbers(number, expected):
    assert inflection.ordinalize(number) == expected
