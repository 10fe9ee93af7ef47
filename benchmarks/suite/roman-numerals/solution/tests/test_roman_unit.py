import pytest
from roman import from_roman, to_roman


def test_every_subtractive_pair():
    for numeral, value in {"IV": 4, "IX": 9, "XL": 40, "XC": 90, "CD": 400, "CM": 900}.items():
        assert from_roman(numeral) == value
        assert to_roman(value) == numeral


def test_mixed_case_is_accepted():
    assert from_roman("mCmXcIv") == 1994


def test_repeated_five_is_refused():
    with pytest.raises(ValueError):
        from_roman("VV")
