"""Hidden tests of the bank-ledger entry: never shown to the agents."""

import random

import pytest
from bank.ledger import InsufficientFunds, Ledger, UnknownAccount


def test_total_money_is_conserved_by_random_operations():
    rng = random.Random(9)
    ledger = Ledger()
    names = ["a", "b", "c", "d"]
    for name in names:
        ledger.open(name)
    total = 0
    for _ in range(2000):
        op = rng.choice(["deposit", "withdraw", "transfer"])
        amount = rng.randint(1, 500)
        src, dst = rng.sample(names, 2)
        try:
            if op == "deposit":
                ledger.deposit(src, amount)
                total += amount
            elif op == "withdraw":
                ledger.withdraw(src, amount)
                total -= amount
            else:
                ledger.transfer(src, dst, amount)
        except InsufficientFunds:
            pass
        assert all(ledger.balance(n) >= 0 for n in names)
        assert sum(ledger.balance(n) for n in names) == total


def test_transfer_to_self_is_refused():
    ledger = Ledger()
    ledger.open("a")
    ledger.deposit("a", 100)
    with pytest.raises(ValueError):
        ledger.transfer("a", "a", 10)
    assert ledger.balance("a") == 100
    assert ledger.history("a") == [("deposit", 100, None)]


def test_history_is_a_copy():
    ledger = Ledger()
    ledger.open("a")
    ledger.deposit("a", 5)
    ledger.history("a").append(("deposit", 1_000_000, None))
    assert ledger.history("a") == [("deposit", 5, None)]


def test_refused_operations_leave_no_history():
    ledger = Ledger()
    ledger.open("a")
    ledger.open("b")
    with pytest.raises(InsufficientFunds):
        ledger.withdraw("a", 1)
    with pytest.raises(InsufficientFunds):
        ledger.transfer("a", "b", 1)
    with pytest.raises(ValueError):
        ledger.deposit("a", 0)
    assert ledger.history("a") == []
    assert ledger.history("b") == []


def test_unknown_accounts_everywhere():
    ledger = Ledger()
    for call in (
        lambda: ledger.deposit("x", 1),
        lambda: ledger.withdraw("x", 1),
        lambda: ledger.history("x"),
        lambda: ledger.transfer("x", "y", 1),
    ):
        with pytest.raises(UnknownAccount):
            call()


def test_withdraw_everything():
    ledger = Ledger()
    ledger.open("a")
    ledger.deposit("a", 42)
    ledger.withdraw("a", 42)
    assert ledger.balance("a") == 0
    assert ledger.history("a") == [("deposit", 42, None), ("withdrawal", 42, None)]
