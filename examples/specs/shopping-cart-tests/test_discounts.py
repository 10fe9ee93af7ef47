import unittest

from shop.discounts import apply_code


class DiscountCodeTests(unittest.TestCase):
    """Discount codes: SAVE10 takes 10% off, HALF takes half off (the discount is rounded
    down to the cent); an unknown code raises KeyError."""

    def test_save10(self):
        self.assertEqual(apply_code(1000, "SAVE10"), 900)
        self.assertEqual(apply_code(999, "SAVE10"), 900)

    def test_half(self):
        self.assertEqual(apply_code(725, "HALF"), 363)

    def test_unknown_code(self):
        with self.assertRaises(KeyError):
            apply_code(100, "FREE")
