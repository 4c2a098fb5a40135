"""Joining logs with the books: ledger matching and invoice matching."""
