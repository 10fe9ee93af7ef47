from service import Inventory, add_item, adjust


def test_listing_filters_and_sorts():
    inventory = Inventory()
    for sku, quantity in (("BBB", 1), ("AAA", 9)):
        add_item({"sku": sku, "name": "x", "quantity": quantity}, inventory)
    assert [i["sku"] for i in inventory.listing()] == ["AAA", "BBB"]
    assert [i["sku"] for i in inventory.listing(1)] == ["BBB"]


def test_adjust_to_exactly_zero():
    item = {"sku": "AAA", "name": "x", "quantity": 3}
    assert adjust(item, {"delta": -3}) == (200, {"sku": "AAA", "name": "x", "quantity": 0})


def test_booleans_are_not_quantities():
    assert add_item({"sku": "AAA", "name": "x", "quantity": False}, Inventory())[0] == 422
