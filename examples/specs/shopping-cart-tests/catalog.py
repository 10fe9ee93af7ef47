"""Test data shared by the tests: SKU -> price in cents."""

PRICES = {"apple": 50, "bread": 250, "cheese": 725}
