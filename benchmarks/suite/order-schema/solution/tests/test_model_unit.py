import pytest
from model import validate

ORDER = {
    "id": "PO-000007",
    "currency": "EUR",
    "status": "draft",
    "lines": [{"sku": "ABC", "quantity": 2, "unit_price": 19.99}],
}


def test_prices_in_cents_that_binary_floats_cannot_hold():
    assert validate(ORDER) is None


def test_error_names_the_line():
    bad = {**ORDER, "lines": [ORDER["lines"][0], {"sku": "ABC", "quantity": 0, "unit_price": 1}]}
    with pytest.raises(ValueError, match=r"lines\[1\]\.quantity"):
        validate(bad)
