import pytest
from shop.cart import UnknownItem


def test_new_cart_is_empty(cart):
    """A new cart holds no items and its total is 0."""
    assert cart.items() == {}
    assert cart.total() == 0


def test_add_counts_quantities(cart):
    """Adding an item twice adds up the quantities."""
    cart.add("apple")
    cart.add("apple", quantity=3)
    assert cart.items() == {"apple": 4}


def test_total_is_price_times_quantity(cart):
    cart.add("apple", quantity=2)
    cart.add("cheese")
    assert cart.total() == 2 * 50 + 725


def test_unknown_item_is_refused(cart):
    """Adding a SKU that is not in the catalog raises UnknownItem and changes nothing."""
    with pytest.raises(UnknownItem):
        cart.add("caviar")
    assert cart.items() == {}


@pytest.mark.parametrize("quantity", [0, -1])
def test_quantity_must_be_positive(cart, quantity):
    """A quantity below 1 raises ValueError."""
    with pytest.raises(ValueError):
        cart.add("bread", quantity=quantity)


class TestRemove:
    def test_remove_some(self, cart):
        cart.add("bread", quantity=3)
        cart.remove("bread", quantity=2)
        assert cart.items() == {"bread": 1}

    def test_remove_all_drops_the_item(self, cart):
        cart.add("bread", quantity=2)
        cart.remove("bread", quantity=2)
        assert cart.items() == {}

    def test_remove_more_than_held_raises(self, cart):
        cart.add("bread")
        with pytest.raises(ValueError):
            cart.remove("bread", quantity=2)
