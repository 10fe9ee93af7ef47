import pytest
from bank.ledger import Ledger, UnknownAccount


def test_unknown_account_is_a_key_error():
    with pytest.raises(KeyError):
        Ledger().balance("x")


def test_transfer_checks_the_destination_first():
    ledger = Ledger()
    ledger.open("a")
    ledger.deposit("a", 10)
    with pytest.raises(UnknownAccount):
        ledger.transfer("a", "zzz", 5)
    assert ledger.balance("a") == 10
