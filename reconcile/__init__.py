"""reconcile: prove that what an LLM gateway charged is what the contract and the books say."""

__version__ = "0.1.0"
