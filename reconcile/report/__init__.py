"""The outputs a run writes: the review workbook, discrepancies.csv, and CI formats."""
