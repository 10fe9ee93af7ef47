"""The catalogue: adding, finding and removing books."""

import unittest

from helpers import sample_books
from library.catalog import Book, Catalog


class TestCatalog(unittest.TestCase):
    """The catalogue finds a book by its ISBN and by words of its title.

    Searching ignores case; adding a second book with a known ISBN is an error.
    """

    def setUp(self):
        self.catalog = Catalog()
        for book in sample_books():
            self.catalog.add(book)

    def test_find_by_isbn(self):
        book = self.catalog.find("978-0-14-143951-8")
        self.assertEqual(book.title, "Pride and Prejudice")
        self.assertEqual(book.price_cents, 899)

    def test_search_ignores_case(self):
        found = self.catalog.search("PRIDE")
        self.assertEqual([b.isbn for b in found], ["978-0-14-143951-8"])

    def test_adding_a_known_isbn_raises(self):
        with self.assertRaises(ValueError):
            self.catalog.add(Book("978-0-14-143951-8", "Again", price_cents=100))


class CatalogRemovalTests(unittest.TestCase):
    def setUp(self):
        self.catalog = Catalog()
        for book in sample_books():
            self.catalog.add(book)

    def test_remove_book(self):
        self.catalog.remove("978-0-19-953556-9")
        self.assertEqual(len(self.catalog), 2)

    def test_remove_unknown_isbn_raises_key_error(self):
        with self.assertRaises(KeyError):
            self.catalog.remove("000")


if __name__ == "__main__":
    unittest.main()
