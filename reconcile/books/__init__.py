"""The customer's books: CSV reading, cell parsing, ledgers and invoices.

The data path, in order: decode (bytes to UTF-8) -> records (records and their lines) ->
csvload (header, table) -> columns (which column is which) -> cells, times, amounts (values)
-> problems (unreadable rows) -> book (the skeleton both loaders share) -> ledger, invoice.
"""
