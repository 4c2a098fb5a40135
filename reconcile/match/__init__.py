"""Joining logs with the books: ledger matching and invoice matching.

ledger (log_id, request_id, else content via tolerant; wording in ledger_text), invoice
(sums per key), and common (lookups and wording both use); tolerance is reconcile.core.tolerance.
"""
