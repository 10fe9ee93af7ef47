"""Shared test data (a helper module of the suite, not a test file)."""

from library.catalog import Book


def sample_books():
    return [
        Book("978-0-14-143951-8", "Pride and Prejudice", price_cents=899),
        Book("978-0-14-118776-1", "Great Expectations", price_cents=1099),
        Book("978-0-19-953556-9", "Persuasion", price_cents=799),
    ]
