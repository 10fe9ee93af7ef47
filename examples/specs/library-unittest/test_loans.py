import datetime
import unittest

from helpers import sample_books
from library.catalog import Catalog
from library.loans import LoanDesk, LoanError

try:  # optional: only used when installed, so not a file to create
    import zoneinfo_extra
except ImportError:
    zoneinfo_extra = None

TODAY = datetime.date(2024, 5, 1)


class LoanDeskTest(unittest.TestCase):
    """Lending a book records who has it and when it is due: 14 days later."""

    def setUp(self):
        catalog = Catalog()
        for book in sample_books():
            catalog.add(book)
        self.desk = LoanDesk(catalog)

    def test_lend_sets_the_due_date(self):
        loan = self.desk.lend("978-0-14-143951-8", member="ada", today=TODAY)
        self.assertEqual(loan.due, datetime.date(2024, 5, 15))
        self.assertEqual(loan.member, "ada")

    def test_a_lent_book_cannot_be_lent_again(self):
        self.desk.lend("978-0-14-143951-8", member="ada", today=TODAY)
        with self.assertRaises(LoanError):
            self.desk.lend("978-0-14-143951-8", member="bob", today=TODAY)

    def test_returning_makes_the_book_available(self):
        self.desk.lend("978-0-14-143951-8", member="ada", today=TODAY)
        self.desk.give_back("978-0-14-143951-8", today=TODAY)
        self.assertTrue(self.desk.available("978-0-14-143951-8"))


class LoanLimitTests(unittest.TestCase):
    def test_a_member_holds_at_most_two_books(self):
        """A member may hold two books at a time; a third loan is refused."""
        catalog = Catalog()
        for book in sample_books():
            catalog.add(book)
        desk = LoanDesk(catalog)
        desk.lend("978-0-14-143951-8", member="ada", today=TODAY)
        desk.lend("978-0-14-118776-1", member="ada", today=TODAY)
        with self.assertRaises(LoanError):
            desk.lend("978-0-19-953556-9", member="ada", today=TODAY)


if __name__ == "__main__":
    unittest.main()
