import datetime
import unittest

from library.fines import fine_for

DUE = datetime.date(2024, 5, 15)


class FineTests(unittest.TestCase):
    """A late return costs 10 cents a day, never more than the price of the book."""

    def test_no_fine_when_returned_on_time(self):
        self.assertEqual(fine_for(due=DUE, returned=DUE, price_cents=899), 0)

    def test_ten_cents_a_day_late(self):
        returned = DUE + datetime.timedelta(days=3)
        self.assertEqual(fine_for(due=DUE, returned=returned, price_cents=899), 30)

    def test_capped_at_the_price_of_the_book(self):
        returned = DUE + datetime.timedelta(days=365)
        self.assertEqual(fine_for(due=DUE, returned=returned, price_cents=899), 899)
