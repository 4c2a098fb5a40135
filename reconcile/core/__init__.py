"""Shared building blocks: period, money, schema, results, findings, redaction, atomic writes."""
