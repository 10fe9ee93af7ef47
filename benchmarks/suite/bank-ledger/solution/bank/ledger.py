"""Accounts with balances in whole cents; every operation is all or nothing."""

from __future__ import annotations

from typing import Any

Entry = tuple[str, int, str | None]


class UnknownAccount(KeyError):
    """No account has this name."""


class InsufficientFunds(Exception):
    """The account holds less than the amount."""


def _amount(amount: Any) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"an amount must be a positive whole number of cents, got {amount!r}")
    return amount


class Ledger:
    """Balances and histories by account name."""

    def __init__(self) -> None:
        self._balances: dict[str, int] = {}
        self._history: dict[str, list[Entry]] = {}

    def _account(self, name: str) -> str:
        if name not in self._balances:
            raise UnknownAccount(name)
        return name

    def open(self, name: str) -> None:
        """Open an account with a balance of 0."""
        if name in self._balances:
            raise ValueError(f"account {name!r} exists")
        self._balances[name] = 0
        self._history[name] = []

    def balance(self, name: str) -> int:
        """The balance of ``name``, in cents."""
        return self._balances[self._account(name)]

    def history(self, name: str) -> list[Entry]:
        """A copy of the account's history: ``(kind, amount, other account or None)``."""
        return list(self._history[self._account(name)])

    def deposit(self, name: str, amount: int) -> None:
        """Add ``amount`` cents to ``name``."""
        self._account(name)
        self._balances[name] += _amount(amount)
        self._history[name].append(("deposit", amount, None))

    def withdraw(self, name: str, amount: int) -> None:
        """Take ``amount`` cents from ``name``; ``InsufficientFunds`` if it holds less."""
        self._account(name)
        _amount(amount)
        if self._balances[name] < amount:
            raise InsufficientFunds(f"{name} holds {self._balances[name]}, not {amount}")
        self._balances[name] -= amount
        self._history[name].append(("withdrawal", amount, None))

    def transfer(self, src: str, dst: str, amount: int) -> None:
        """Move ``amount`` cents from ``src`` to ``dst``, or change nothing."""
        self._account(src)
        self._account(dst)
        _amount(amount)
        if src == dst:
            raise ValueError("cannot transfer to the same account")
        if self._balances[src] < amount:
            raise InsufficientFunds(f"{src} holds {self._balances[src]}, not {amount}")
        self._balances[src] -= amount
        self._balances[dst] += amount
        self._history[src].append(("transfer_out", amount, dst))
        self._history[dst].append(("transfer_in", amount, src))
