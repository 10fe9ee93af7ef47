from catalog import PRICES
from shop.cart import Cart
from shop.discounts import apply_code


def test_receipt_lines():
    """receipt() lists one line per SKU in the order added, as 'SKU xQTY PRICE', then the total."""
    cart = Cart(PRICES)
    cart.add("cheese")
    cart.add("apple", quantity=2)
    assert cart.receipt() == ["cheese x1 7.25", "apple x2 1.00", "total 8.25"]


def test_discounted_total():
    """A discount code applies to the cart's total."""
    cart = Cart(PRICES)
    cart.add("bread", quantity=4)
    assert apply_code(cart.total(), "SAVE10") == 900
