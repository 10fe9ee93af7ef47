import unittest

from bank.ledger import InsufficientFunds, Ledger, UnknownAccount


class TestAccounts(unittest.TestCase):
    def test_open_starts_at_zero(self):
        ledger = Ledger()
        ledger.open("alice")
        self.assertEqual(ledger.balance("alice"), 0)

    def test_open_twice_is_an_error(self):
        ledger = Ledger()
        ledger.open("alice")
        with self.assertRaises(ValueError):
            ledger.open("alice")

    def test_unknown_account(self):
        with self.assertRaises(UnknownAccount):
            Ledger().balance("nobody")
        self.assertTrue(issubclass(UnknownAccount, KeyError))


class TestMoney(unittest.TestCase):
    def setUp(self):
        self.ledger = Ledger()
        self.ledger.open("alice")
        self.ledger.open("bob")
        self.ledger.deposit("alice", 10_000)

    def test_deposit_and_withdraw(self):
        self.ledger.withdraw("alice", 2_500)
        self.assertEqual(self.ledger.balance("alice"), 7_500)

    def test_amounts_must_be_positive_whole_cents(self):
        for amount in (0, -5, 1.5, "10", True):
            with self.subTest(amount=amount), self.assertRaises(ValueError):
                self.ledger.deposit("alice", amount)

    def test_overdraft_is_refused(self):
        with self.assertRaises(InsufficientFunds):
            self.ledger.withdraw("alice", 10_001)
        self.assertEqual(self.ledger.balance("alice"), 10_000)

    def test_transfer(self):
        self.ledger.transfer("alice", "bob", 4_000)
        self.assertEqual((self.ledger.balance("alice"), self.ledger.balance("bob")), (6_000, 4_000))

    def test_failed_transfer_changes_nothing(self):
        with self.assertRaises(InsufficientFunds):
            self.ledger.transfer("bob", "alice", 1)
        with self.assertRaises(UnknownAccount):
            self.ledger.transfer("alice", "carol", 1)
        self.assertEqual((self.ledger.balance("alice"), self.ledger.balance("bob")), (10_000, 0))

    def test_history(self):
        self.ledger.transfer("alice", "bob", 300)
        self.assertEqual(
            self.ledger.history("bob"),
            [("transfer_in", 300, "alice")],
        )
        self.assertEqual(
            self.ledger.history("alice"),
            [("deposit", 10_000, None), ("transfer_out", 300, "bob")],
        )


if __name__ == "__main__":
    unittest.main()
