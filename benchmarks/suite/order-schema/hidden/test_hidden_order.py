"""Hidden tests of the order-schema entry: never shown to the agents."""

import copy

import pytest
from model import validate

ORDER = {
    "id": "PO-424242",
    "currency": "GBP",
    "status": "submitted",
    "lines": [{"sku": "ABC", "quantity": 1000, "unit_price": 2.5}],
}


def changed(path, value):
    data = copy.deepcopy(ORDER)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("lines", 0, "unit_price"), 0.25),
        (("lines", 0, "unit_price"), 1),
        (("lines", 0, "sku"), "ABCDEFGHIJKL"),
        (("lines", 0, "quantity"), 1),
        (("note",), "x" * 200),
        (("note",), ""),
        (("discount_percent",), 50),
        (("discount_percent",), 0),
        (("discount_percent",), 12.5),
        (("status",), "paid"),
    ],
)
def test_boundaries_that_are_valid(path, value):
    assert validate(changed(path, value)) is None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("lines", 0, "unit_price"), 0.125),
        (("lines", 0, "unit_price"), -1),
        (("lines", 0, "unit_price"), "2.50"),
        (("lines", 0, "sku"), "ABCDEFGHIJKLM"),
        (("lines", 0, "sku"), "AB"),
        (("lines", 0, "quantity"), 1001),
        (("lines", 0, "quantity"), True),
        (("lines", 0, "quantity"), "3"),
        (("lines", 0, "quantity"), KeyError),
        (("lines", 0, "colour"), "red"),
        (("note",), "x" * 201),
        (("note",), None),
        (("discount_percent",), 50.5),
        (("discount_percent",), -0.5),
        (("discount_percent",), False),
        (("currency",), "eur"),
        (("status",), "shipped"),
        (("id",), "PO-12345"),
        (("id",), "PO-1234567"),
        (("id",), "XPO-123456"),
        (("lines",), []),
        (("lines",), {"sku": "ABC"}),
        (("lines",), ["ABC"]),
        (("extra",), 1),
    ],
)
def test_invalid_orders(path, value):
    with pytest.raises(ValueError):
        validate(changed(path, value))


def test_fifty_lines_but_not_fifty_one():
    line = {"sku": "ABC", "quantity": 1, "unit_price": 1.0}
    assert validate({**ORDER, "lines": [dict(line) for _ in range(50)]}) is None
    with pytest.raises(ValueError):
        validate({**ORDER, "lines": [dict(line) for _ in range(51)]})


def test_validate_does_not_change_its_argument():
    data = copy.deepcopy(ORDER)
    validate(data)
    assert data == ORDER


@pytest.mark.parametrize("data", [None, [], "PO-000001", 3])
def test_not_an_object(data):
    with pytest.raises(ValueError):
        validate(data)
