from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Book:
    isbn: str
    title: str
    price_cents: int = 0


class Catalog:
    def __init__(self) -> None:
        self._books: dict[str, Book] = {}

    def __len__(self) -> int:
        return len(self._books)

    def add(self, book: Book) -> None:
        if book.isbn in self._books:
            raise ValueError(f"ISBN {book.isbn} is already in the catalogue")
        self._books[book.isbn] = book

    def find(self, isbn: str) -> Book:
        return self._books[isbn]

    def search(self, words: str) -> list[Book]:
        wanted = words.casefold().split()
        return [b for b in self._books.values() if all(w in b.title.casefold() for w in wanted)]

    def remove(self, isbn: str) -> None:
        del self._books[isbn]
