"""Hidden tests of the roman-numerals entry: never shown to the agents."""

import pytest
from roman import from_roman, to_roman


def test_round_trip_every_number():
    for n in range(1, 4000):
        numeral = to_roman(n)
        assert numeral == numeral.upper()
        assert from_roman(numeral) == n
        assert from_roman(numeral.lower()) == n


def test_numerals_are_the_shortest_standard_form():
    assert to_roman(8) == "VIII"
    assert to_roman(40) == "XL"
    assert to_roman(90) == "XC"
    assert to_roman(400) == "CD"
    assert to_roman(444) == "CDXLIV"
    assert to_roman(2024) == "MMXXIV"


@pytest.mark.parametrize(
    "text",
    ["IL", "XM", "VV", "LL", "DD", "IIV", "XXXX", "CCCC", "IXI", "XCX", "CMC", "MCMC", " X", "X "],
)
def test_non_standard_forms_are_refused(text):
    with pytest.raises(ValueError):
        from_roman(text)


def test_from_roman_refuses_non_strings():
    with pytest.raises((TypeError, ValueError)):
        from_roman(5)
