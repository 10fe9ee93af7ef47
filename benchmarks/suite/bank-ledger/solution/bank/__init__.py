"""An in-memory bank ledger with balances in whole cents."""
