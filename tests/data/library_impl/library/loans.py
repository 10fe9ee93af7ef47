from __future__ import annotations

import datetime
from dataclasses import dataclass

from library.catalog import Catalog

LOAN_DAYS = 14
MAX_BOOKS = 2


class LoanError(Exception):
    pass


@dataclass
class Loan:
    isbn: str
    member: str
    due: datetime.date


class LoanDesk:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.loans: dict[str, Loan] = {}

    def lend(self, isbn: str, *, member: str, today: datetime.date) -> Loan:
        self.catalog.find(isbn)
        if isbn in self.loans:
            raise LoanError(f"{isbn} is lent out")
        if sum(loan.member == member for loan in self.loans.values()) >= MAX_BOOKS:
            raise LoanError(f"{member} already holds {MAX_BOOKS} books")
        loan = Loan(isbn, member, today + datetime.timedelta(days=LOAN_DAYS))
        self.loans[isbn] = loan
        return loan

    def give_back(self, isbn: str, *, today: datetime.date) -> Loan:
        return self.loans.pop(isbn)

    def available(self, isbn: str) -> bool:
        return isbn not in self.loans
