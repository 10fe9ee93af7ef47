import pytest
from catalog import PRICES
from shop.cart import Cart


@pytest.fixture
def cart():
    return Cart(PRICES)
