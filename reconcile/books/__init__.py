"""The customer's books: CSV reading, cell parsing, ledgers and invoices."""
